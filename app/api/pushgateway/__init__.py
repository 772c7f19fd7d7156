"""The Pushgateway protocol: routes, the grouping key in the URL, and the pushed text."""
