"""A user's first hour on a machine with no internet, in a real browser: the API docs render
(Swagger UI and ReDoc), Swagger's "Try it out" creates a scaler from the example it offers,
and the operator page shows a scaler acting on pushed metrics. Each test leaves a screenshot.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import off_the_machine, requested_urls
from tests.conftest import ADMIN_TOKEN, LiveServer

WAIT_S = 30  # Chromium on 2 shared cores parses a 1.5 MB bundle in a few seconds


def wait_for(driver: WebDriver, css: str, timeout: float = WAIT_S) -> WebElement:
    element: WebElement = WebDriverWait(driver, timeout).until(
        seen.visibility_of_element_located((By.CSS_SELECTOR, css))
    )
    return element


def wait_for_text(driver: WebDriver, css: str, text: str, timeout: float = WAIT_S) -> None:
    WebDriverWait(driver, timeout).until(
        seen.text_to_be_present_in_element((By.CSS_SELECTOR, css), text)
    )


def test_swagger_ui_lists_the_operations_offline(
    page: WebDriver, live: LiveServer, screenshots: Path
) -> None:
    page.get(f"{live.url}/docs")
    wait_for(page, "#operations-scalers-create_scaler")
    operations = page.find_elements(By.CSS_SELECTOR, ".opblock")
    assert len(operations) > 30, "every operation is listed"
    assert "Ciuic" in page.find_element(By.CSS_SELECTOR, ".info .title").text
    page.save_screenshot(str(screenshots / "docs.png"))


def test_redoc_renders_the_reference_offline(
    page: WebDriver, live: LiveServer, screenshots: Path
) -> None:
    page.get(f"{live.url}/redoc")
    wait_for_text(page, "h1", "Ciuic")
    wait_for(page, '[data-section-id="operation/create_scaler"]')
    assert page.find_elements(By.CSS_SELECTOR, "[data-section-id^='operation/']")
    page.save_screenshot(str(screenshots / "redoc.png"))


def test_try_it_out_creates_a_scaler_from_the_example(
    page: WebDriver, live: LiveServer, screenshots: Path
) -> None:
    page.get(f"{live.url}/docs#/scalers/create_scaler")  # deep link: opened
    operation = wait_for(page, "#operations-scalers-create_scaler")
    operation.find_element(By.CSS_SELECTOR, ".try-out__btn").click()
    body = wait_for(page, "#operations-scalers-create_scaler textarea.body-param__text")
    assert '"deepseek-service"' in (body.get_attribute("value") or ""), "not `{}`"
    operation.find_element(By.CSS_SELECTOR, "button.execute").click()
    wait_for_text(page, "#operations-scalers-create_scaler .live-responses-table", "201")
    page.save_screenshot(str(screenshots / "docs-try-it-out.png"))
    created = httpx.get(f"{live.url}/v1/scalers/deepseek-service")
    assert created.status_code == 200
    assert created.json()["spec"]["emergency"]["burst_multiplier"] == 3.0
    # Gone again: its prophet model would otherwise fit on the next test's load
    assert httpx.delete(f"{live.url}/v1/scalers/deepseek-service").status_code == 204


LLM = {
    "name": "llm",
    "target": "llm",
    "metrics": [
        {"name": "gpu_utilization", "target": "85%"},
        {"name": "request_queue", "target": "<5"},
    ],
    "max_replicas": 8,
    "capacity": {"request_rate": "2/s"},
    "algorithm": {"name": "seasonal_naive"},  # fitted in a moment, as the page needs
    "emergency": {
        "enabled": True,
        "burst_multiplier": 3.0,
        "triggers": [{"metric": "request_queue", "threshold": 50, "duration": "0s"}],
    },
}


def test_the_operator_page_shows_a_scaler_acting(
    page: WebDriver, live: LiveServer, screenshots: Path
) -> None:
    assert httpx.post(f"{live.url}/v1/scalers", json=LLM).status_code == 201
    page.get(f"{live.url}/ui#scaler=llm")
    wait_for(page, '#scalers li[data-name="llm"]')
    wait_for_text(page, "#s-name", "llm")

    # Two hours of load the pods pushed (the forecast's history), then a queue over the
    # trigger's threshold: the service scales at once, and the page follows.
    now = time.time()
    history = [
        {
            "metric": "request_rate",
            "labels": {"pod": "llm-0"},
            "value": 6 + 3 * math.sin(i / 20),
            "timestamp": now - 7200 + 30 * i,
        }
        for i in range(240)
    ]
    burst = [
        {"metric": "request_queue", "labels": {"pod": "llm-0"}, "value": 120},
        {"metric": "gpu_utilization", "labels": {"pod": "llm-0"}, "value": 97},
    ]
    for samples in (history, burst):
        pushed = httpx.post(f"{live.url}/v1/samples", json={"samples": samples})
        assert pushed.status_code == 200, pushed.text
    wait_for_text(page, "#events", "scaled llm from 1 to")
    wait_for_text(page, "#reasons", "emergency")
    decided = int(page.find_element(By.CSS_SELECTOR, "#s-decided").text)
    assert decided >= 3  # at least the burst: 1 replica x burst_multiplier 3
    assert page.find_elements(By.CSS_SELECTOR, "#replicas-chart path.decided")
    meta = page.find_element(By.CSS_SELECTOR, '#scalers li[data-name="llm"] .meta').text
    assert f"→ {decided} replicas" in meta
    # The forecast, refitted in the background within seconds, with its band.
    wait_for(page, "#forecast-chart path.band")
    assert page.find_elements(By.CSS_SELECTOR, "#forecast-chart path.mean")
    assert "seasonal_naive" in page.find_element(By.CSS_SELECTOR, "#f-status").text
    page.save_screenshot(str(screenshots / "ui.png"))


def test_the_operator_page_asks_for_a_token_when_the_api_needs_one(
    browser: WebDriver, secured: LiveServer, screenshots: Path
) -> None:
    browser.get("about:blank")
    requested_urls(browser)
    browser.get(f"{secured.url}/ui")
    wait_for(browser, "#login")
    browser.save_screenshot(str(screenshots / "ui-token.png"))
    browser.find_element(By.CSS_SELECTOR, "#token").send_keys("not-the-token")
    browser.find_element(By.CSS_SELECTOR, "#login button").click()
    wait_for_text(browser, "#login-error", "unknown or revoked")

    browser.find_element(By.CSS_SELECTOR, "#token").send_keys(ADMIN_TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#login button").click()
    wait_for(browser, "#no-scalers")
    assert not browser.find_element(By.CSS_SELECTOR, "#login").is_displayed()
    # Kept for the tab: a reload does not ask again; "forget token" does.
    browser.refresh()
    wait_for(browser, "#no-scalers")
    browser.find_element(By.CSS_SELECTOR, "#forget").click()
    wait_for(browser, "#login")
    stored = browser.execute_script("return sessionStorage.getItem('ciuic.token')")
    assert stored is None
    assert off_the_machine(requested_urls(browser), secured) == []


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/ui"])
def test_no_page_names_another_host(live: LiveServer, path: str) -> None:
    html = httpx.get(f"{live.url}{path}").text
    for host in ("googleapis", "jsdelivr", "unpkg", "cdnjs", "tiangolo"):
        assert host not in html
