"""The loops that run on the leader: reconcile, forecast refits, rollups and retention,
rollouts; leader election and the supervisor that restarts a crashed loop. Each takes a clock
and calls the services (app.services) for what a flow does; none imports the API."""
