"""The operations console in a real headless chromium against a real uvicorn serving the
gateway: real mainframe_sim, real journal, real RabbitMQ clearing queues, a real payment
made through the OBIE API, a real dead letter on the memory transport.

The screenshot test compares a 32 x 24 luminance thumbnail of the page with
``screenshot_reference.txt`` (mean difference at most :data:`TOLERANCE` of 255). After a
deliberate change of the page's look, refresh the reference with
``ISOBRIDGE_REFRESH_SCREENSHOT=1 pytest tests/gateway/console/test_browser.py -k screenshot``
and look at the PNG it leaves (``console.png`` in the test's tmp_path) before committing.
"""

from __future__ import annotations

import asyncio
import copy
import os
import uuid
from pathlib import Path

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from canonical_model.codes import TransactionStatus
from routing.transport import Delivery, Outcome, Transport, as_batch_handler, open_transport
from tests.gateway.clearing_system import ClearingSystem
from tests.gateway.console.browser import (
    WINDOW,
    TlsTerminator,
    chromium,
    require_chromium,
    run_for,
    script_errors,
    serving,
    sign_in,
    text_of,
    wait_for,
)
from tests.gateway.console.png import read_png, thumbnail
from tests.gateway.harness import ALICE_EUR, PISP, Harness, payment_consent_body, running_gateway
from tests.routing.conftest import make_topology, message, wait_until

REFERENCE = Path(__file__).with_name("screenshot_reference.txt")
THUMBNAIL = (32, 24)
TOLERANCE = 6
IMG_MARKUP = "<img src=x onerror=window.pwned=1>"
SCRIPT_MARKUP = "<script>window.pwned=2</script>"


@pytest.fixture(autouse=True)
def _browser_installed() -> None:
    """Skip (fail under CI) before any server starts when there is no chromium."""
    require_chromium()


async def _payment(h: Harness, end_to_end_id: str) -> str:
    """A domestic payment through the OBIE API, settled (ACSC) by the clearing system."""
    assert h.clearing is not None
    clearing = ClearingSystem(h.clearing.outgoing)
    body = payment_consent_body("10.50")
    body["Data"]["Initiation"]["EndToEndIdentification"] = end_to_end_id
    token = await h.client_token(scope="payments")
    created = await h.http.post(
        f"{PISP}/domestic-payment-consents",
        json=body,
        headers=h.auth(token, **{"x-idempotency-key": uuid.uuid4().hex}),
    )
    assert created.status_code == 201, created.text
    consent_id = created.json()["Data"]["ConsentId"]
    psu = await h.authorise(consent_id, "payments")
    payment = copy.deepcopy(body)
    payment["Data"]["ConsentId"] = consent_id
    posted = await h.http.post(
        f"{PISP}/domestic-payments",
        json=payment,
        headers=h.auth(psu, **{"x-idempotency-key": uuid.uuid4().hex}),
    )
    assert posted.status_code == 201, posted.text
    payment_id = str(posted.json()["Data"]["DomesticPaymentId"])
    await clearing.answer(await clearing.take(), TransactionStatus.ACSC)
    for _ in range(200):
        view = h.journal.status(payment_id)
        if view is not None and view.status == "ACSC":
            return payment_id
        await asyncio.sleep(0.05)
    raise AssertionError(f"payment {payment_id} was not settled")


def _parked(reason: str) -> Transport:
    """A memory transport whose ``core`` holds ``m-0``, dead-lettered with ``reason``."""
    transport = open_transport("memory://", make_topology())
    transport.start()
    consumer = transport.consume("core", as_batch_handler(lambda d: Outcome.dead_letter(reason)))
    transport.publish(message(0))
    wait_until(lambda: len(transport.dead_letters("core")) == 1, what="a dead letter")
    consumer.stop()
    return transport


def _no_injected_markup(driver: WebDriver) -> None:
    assert driver.find_elements(By.TAG_NAME, "img") == []
    scripts = driver.execute_script(
        "return Array.from(document.scripts, s => s.getAttribute('src'))"
    )
    assert scripts == ["/console/console.js"]
    assert driver.execute_script("return window.pwned === undefined") is True


def _search(driver: WebDriver, identifier: str) -> str:
    box = driver.find_element(By.ID, "trace-id")
    box.clear()
    box.send_keys(identifier)
    driver.find_element(By.ID, "trace-go").click()
    return str(
        wait_for(
            driver,
            lambda d: (m := text_of(d, "trace-message")) and not m.startswith("tracing") and m,
            f"the trace of {identifier}",
        )
    )


def test_search_shows_the_trace_and_says_when_an_id_is_unknown(tmp_path: Path) -> None:
    @run_for(120)
    async def scenario() -> None:
        async with running_gateway(tmp_path, with_clearing=True) as h:
            payment_id = await _payment(h, IMG_MARKUP)
            admin = await h.client_token(scope="admin")
            app = TlsTerminator(h.built.app, h.tpps["tpp-one"].certificate_pem)
            async with serving(app) as url:
                await asyncio.to_thread(browse, url, admin, payment_id)

    def browse(url: str, admin: str, payment_id: str) -> None:
        with chromium(tmp_path) as driver:
            sign_in(driver, url, admin)
            # the live figures: the payment's three events, its answer (201 ACSP) and latency
            wait_for(
                driver,
                lambda d: text_of(d, "answered-count") == "1 answered in the window",
                "the payment in the live figures",
            )
            p50, p95 = (float(v) for v in text_of(driver, "latency").split(" / "))
            assert 0 < p50 == p95
            spark = driver.find_elements(By.CSS_SELECTOR, "#events-spark svg polyline")
            assert len(spark) == 1 and len(str(spark[0].get_attribute("points")).split()) == 60
            assert _search(driver, payment_id) == f"1 transaction for {payment_id}"
            kinds = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#trace td.kind")]
            assert kinds == ["received", "sent", "status_changed"]
            facts = driver.find_element(By.CSS_SELECTOR, "#trace dl").text
            assert "ACSC" in facts and "10.50 EUR" in facts and IMG_MARKUP in facts
            times = driver.find_elements(By.CSS_SELECTOR, "#trace tr.event td.number")
            assert times[1].text == "0.0"  # the first event's +ms
            # the encrypted personal part is named, never shown
            personal = driver.find_elements(By.CSS_SELECTOR, "#trace tr.event td.muted")
            assert personal[0].text == "debtor_account, initiation"
            assert ALICE_EUR.iban not in driver.page_source
            # the end-to-end id a TPP chose, markup included, finds it too, shown as text
            assert _search(driver, IMG_MARKUP) == f"1 transaction for {IMG_MARKUP}"
            _no_injected_markup(driver)

            unknown = _search(driver, "no-such-id-42")
            assert unknown.startswith("no transaction with id 'no-such-id-42'")
            assert driver.find_elements(By.CSS_SELECTOR, "#trace *") == []
            assert script_errors(driver) == []

    scenario()


def test_the_replay_button_moves_a_dead_letter_back_and_markup_stays_text(
    tmp_path: Path,
) -> None:
    reason = f"core refused: {IMG_MARKUP} {SCRIPT_MARKUP}"
    transport = _parked(reason)
    redelivered: list[str] = []

    @run_for(120)
    async def scenario() -> None:
        async with running_gateway(tmp_path, dead_letters=transport) as h:
            admin = await h.client_token(scope="admin")
            app = TlsTerminator(h.built.app, h.tpps["tpp-one"].certificate_pem)
            async with serving(app) as url:
                await asyncio.to_thread(browse, url, admin)

    def browse(url: str, admin: str) -> None:
        with chromium(tmp_path) as driver:
            driver.get(f"{url}/console")
            driver.find_element(By.ID, "token").send_keys("not-a-token")
            driver.find_element(By.ID, "sign-in").click()
            refused = wait_for(
                driver,
                lambda d: (s := text_of(d, "status")).startswith("the token was refused") and s,
                "the refusal",
            )
            assert refused.startswith("the token was refused (401): ")
            sign_in(driver, url, admin)
            stored = (
                "return [sessionStorage.getItem('isobridge.console.token'), localStorage.length]"
            )
            assert driver.execute_script(stored) == [admin, 0]
            row = wait_for(
                driver,
                lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-message-id='m-0']"),
                "the dead letter",
            )[0]
            _no_injected_markup(driver)
            assert row.find_element(By.CSS_SELECTOR, "td.reason").text == reason
            count = "h3[data-destination='core'] .count"
            assert driver.find_element(By.CSS_SELECTOR, count).text == "(1)"

            def handle(delivery: Delivery) -> Outcome:
                redelivered.append(delivery.message.ids.message_id)
                return Outcome.ack()

            consumer = transport.consume("core", as_batch_handler(handle))
            try:
                row.find_element(By.CSS_SELECTOR, "button.replay").click()
                wait_for(
                    driver,
                    lambda d: d.find_element(By.CSS_SELECTOR, count).text == "(0)",
                    "the dead-letter queue to empty",
                )
                assert text_of(driver, "dlq-message") == "replayed 1 from core: m-0"
                wait_until(lambda: redelivered == ["m-0"], what="m-0 delivered again")
            finally:
                consumer.stop()
            assert transport.dead_letters("core") == []
            assert script_errors(driver) == []
            driver.find_element(By.ID, "sign-out").click()
            assert text_of(driver, "status").startswith("signed out")
            assert driver.execute_script(stored) == [None, 0]
            assert driver.find_elements(By.CSS_SELECTOR, "#dlq-list *") == []

    try:
        scenario()
    finally:
        transport.close()


def test_screenshot_of_the_console(tmp_path: Path) -> None:
    transport = _parked("core refused: account closed")

    @run_for(120)
    async def scenario() -> None:
        async with running_gateway(tmp_path, with_clearing=True, dead_letters=transport) as h:
            payment_id = await _payment(h, f"E2E-{uuid.uuid4().hex[:8]}")
            admin = await h.client_token(scope="admin")
            app = TlsTerminator(h.built.app, h.tpps["tpp-one"].certificate_pem)
            async with serving(app) as url:
                await asyncio.to_thread(browse, url, admin, payment_id)

    def browse(url: str, admin: str, payment_id: str) -> None:
        with chromium(tmp_path) as driver:
            sign_in(driver, url, admin)
            wait_for(
                driver,
                lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-message-id='m-0']"),
                "the dead letter",
            )
            wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".spark svg"), "sparklines")
            _search(driver, payment_id)
            png = driver.get_screenshot_as_png()
        (tmp_path / "console.png").write_bytes(png)
        check_screenshot(png)

    try:
        scenario()
    finally:
        transport.close()


def check_screenshot(png: bytes) -> None:
    image = read_png(png)
    assert (image.width, image.height) == WINDOW
    # not blank: several shades, and a good part of the page is not the background
    shades = {value for row in image.luminance for value in row}
    assert len(shades) > 32
    background = max(range(256), key=lambda v: sum(row.count(v) for row in image.luminance))
    other = sum(len(row) - row.count(background) for row in image.luminance)
    assert other > image.width * image.height // 10
    cells = thumbnail(image, *THUMBNAIL)
    if os.environ.get("ISOBRIDGE_REFRESH_SCREENSHOT"):
        REFERENCE.write_text(
            "\n".join(
                " ".join(f"{v:3d}" for v in cells[y * THUMBNAIL[0] : (y + 1) * THUMBNAIL[0]])
                for y in range(THUMBNAIL[1])
            )
            + "\n"
        )
    reference = [int(v) for v in REFERENCE.read_text().split()]
    assert len(reference) == len(cells)
    difference = sum(abs(a - b) for a, b in zip(cells, reference, strict=True)) / len(cells)
    assert difference <= TOLERANCE, f"the page looks different: mean difference {difference:.1f}"
