"""The operator hears when a campaign goes wrong: the automations of deployments/automations.yaml,
end to end.

A real Prefect server with the deployments and a process worker (scripts/server.py LocalStack),
a webhook receiver on 127.0.0.1 started here, a Custom Webhook notification block pointing at it,
and the automations created with the documented command (`python -m tasks.alerts --block ...`).
Then a campaign whose key the gateway refuses must reach the receiver as one notification naming
the campaign and the reason, and the event of an incomplete campaign as another; neither holds a
phone number or the key.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from helpers import copy_working_tree, run_deployment
from hypothesis import given
from hypothesis import strategies as st

from scripts.server import LocalStack, StackConfig
from tasks import alerts

SEND = "send-survey-campaign/weekly-survey"
BLOCK = "custom-webhook/campaign-alerts"
WAIT = 60.0  # every wait for the server, the worker or a notification is bounded by this
# A phone number in any usual spelling (06 12 34 56 78, +33612345678, 0033..., 06.12...), read
# once links are taken out (a run id in a URL may hold nine digits in a row).
PHONE = re.compile(r"\+33|(?:\d[ .]?){9,}")


# -- a webhook receiver ------------------------------------------------------------------------


class Receiver:
    """An HTTP server on 127.0.0.1 that records the JSON body of every POST."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's name
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.posts.append(json.loads(raw or b"{}"))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def matching(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        with self._lock:
            return [p for p in self.posts if predicate(p)]

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = WAIT
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := self.matching(predicate):
                return found
            time.sleep(0.5)
        raise AssertionError(f"no notification in {timeout:.0f} s; received: {self.posts}")


def python(stack: LocalStack, code: str, *args: str, **env: str) -> str:
    """Run Python against the stack's Prefect server, from the clone's root; its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=stack.config.root,
        env={**stack.cli_env(), **env},
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def create_alerts(stack: LocalStack, block: str = BLOCK) -> subprocess.CompletedProcess[str]:
    """The documented command, from the clone's root, against the stack's server."""
    return subprocess.run(
        [sys.executable, "-m", "tasks.alerts", "--block", block],
        cwd=stack.config.root,
        env=stack.cli_env(),
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )


SAVE_WEBHOOK = """
import sys
from prefect.blocks.notifications import CustomWebhookNotificationBlock
CustomWebhookNotificationBlock(
    name="campaign-alerts", url=sys.argv[1],
    json_data={"subject": "{{subject}}", "body": "{{body}}"},
).save("campaign-alerts", overwrite=True)
"""

SAVE_SECRET = """
import os, sys
from prefect.blocks.system import Secret
Secret(value=os.environ.pop("_WRONG_KEY")).save(sys.argv[1], overwrite=True)
"""

# A flow run that ends as a send run would with chunks in doubt, calling the emitter the send
# flow calls at its end.
INCOMPLETE_RUN = """
import json, sys
from prefect import flow
from prefect.runtime import flow_run
from tasks.steps.alerts import emit_campaign_outcome

@flow(name="alert-probe")
def probe(summary: dict) -> str:
    emit_campaign_outcome(summary)
    return str(flow_run.id)

print(probe(json.loads(sys.argv[1])))
"""


def text_of(post: dict[str, Any]) -> str:
    return f"{post.get('subject', '')}\n{post.get('body', '')}"


def assert_no_secret(stack: LocalStack, post: dict[str, Any], *keys: str) -> None:
    text = text_of(post)
    assert not PHONE.search(re.sub(r"https?://\S+", "", text)), text
    for key in (stack.config.api_key, *keys):
        assert key not in text


def events_of(stack: LocalStack, resource_id: str, name: str, timeout: float = WAIT) -> list[Any]:
    """The server's stored events of one resource and name (the persister writes in batches)."""
    from prefect.server.events.schemas.events import ReceivedEvent

    body = {
        "filter": {"resource": {"id": [resource_id]}, "event": {"name": [name]}},
        "limit": 50,
    }
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = stack.api("POST", "/events/filter", body)["events"]
        if found:
            return [ReceivedEvent.model_validate(e) for e in found]
        time.sleep(1)
    raise AssertionError(f"no {name} event for {resource_id} in {timeout:.0f} s")


def server_trigger(stack: LocalStack, name: str) -> Any:
    """The trigger of the named automation, as the server evaluates it."""
    from prefect.server.events.schemas.automations import Automation

    [found] = stack.api("POST", "/automations/filter", {"automations": {"name": {"any_": [name]}}})
    return Automation.model_validate(found).trigger


# -- the stack -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[LocalStack]:
    """The deployments and a worker, the webhook block, the automations made as documented."""
    clone = copy_working_tree(tmp_path_factory.mktemp("clone-alerts"))
    home = tmp_path_factory.mktemp("prefect-home-alerts")
    suppression = home / "suppression.csv"  # the workers' own list, as an operator keeps one
    suppression.write_text("phone\n+33699999901\n", encoding="utf-8")
    config = StackConfig(root=clone, home=home, logs=home / "logs", suppression_list=suppression)
    with LocalStack(config) as running:
        python(running, SAVE_WEBHOOK, receiver.url)
        done = create_alerts(running)
        assert done.returncode == 0, done.stdout + done.stderr
        yield running


# -- end to end ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_creating_again_replaces_the_automations(stack: LocalStack) -> None:
    again = create_alerts(stack)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "PREFECT_FLOWS_HEARTBEAT_FREQUENCY=30" in again.stdout  # what the workers need
    found = stack.api("POST", "/automations/filter", {})
    names = sorted(a["name"] for a in found)
    expected = sorted(a["name"] for a in alerts.load_automations(alerts.AUTOMATIONS_FILE))
    assert names == expected  # one of each, the notifications on the block named
    [block] = stack.api(
        "POST",
        "/block_documents/filter",
        {"block_documents": {"name": {"any_": ["campaign-alerts"]}}},
    )
    notify = [x for a in found for x in a["actions"] if x["type"] == "send-notification"]
    assert notify and {x["block_document_id"] for x in notify} == {block["id"]}

    missing = create_alerts(stack, "custom-webhook/nobody")
    assert missing.returncode == 1 and "no block 'custom-webhook/nobody'" in missing.stderr
    assert len(stack.api("POST", "/automations/filter", {})) == len(expected)


@pytest.mark.slow
def test_a_failed_campaign_run_notifies_the_operator_once(
    stack: LocalStack, receiver: Receiver
) -> None:
    # The operator saved a key the gateway does not know: the run ends Failed, saying so.
    wrong_key = "sim-wrong-" + secrets.token_hex(8)
    python(stack, SAVE_SECRET, "smspartner-api-key", _WRONG_KEY=wrong_key)
    cid = "alerte-cle-refusee"
    done, run_id = run_deployment(stack, SEND, {"campaign_id": cid}, timeout=int(WAIT))
    assert done.returncode != 0
    assert stack.api("GET", f"/flow_runs/{run_id}")["state_type"] == "FAILED"

    def about_this_run(post: dict[str, Any]) -> bool:
        return cid in text_of(post)

    [note] = receiver.wait_for(about_this_run)
    assert note["subject"] == f"Campagne SMS {cid} : Failed"
    assert (
        f"La campagne « {cid} » (send-survey-campaign) s'est arrêtée en état Failed."
        in (note["body"])
    )
    assert "Raison : the gateway refused the API key (code 10)" in note["body"]
    assert "Déploiement : weekly-survey" in note["body"]
    assert_no_secret(stack, note, wrong_key)
    time.sleep(3)  # a second notification of the same run would have come by now
    assert len(receiver.matching(about_this_run)) == 1

    # The proactive automations cannot be waited for here (90 s, 15 min): the server's own
    # matching shows they watch this run's real events.
    zombie = server_trigger(stack, "survey-crash-zombie-runs")
    resource = f"prefect.flow-run.{run_id}"
    [beat, *_] = events_of(stack, resource, "prefect.flow-run.heartbeat")
    [failed] = events_of(stack, resource, "prefect.flow-run.Failed")
    assert zombie.covers(beat) and zombie.starts_after(beat.event) and zombie.expects(beat.event)
    assert zombie.covers(failed) and zombie.expects(failed.event)
    late = server_trigger(stack, "survey-campaign-not-started")
    [pending] = events_of(stack, resource, "prefect.flow-run.Pending")
    [running] = events_of(stack, resource, "prefect.flow-run.Running")
    assert late.covers(pending) and late.starts_after(pending.event)
    assert late.covers(running) and late.expects(running.event)
    assert not late.starts_after("prefect.flow-run.Scheduled")  # runs are made days ahead


@pytest.mark.slow
def test_an_incomplete_campaign_notifies_the_operator_with_counts(
    stack: LocalStack, receiver: Receiver
) -> None:
    cid = "alerte-en-doute"
    summary = {
        "campaign_id": cid,
        "survey_id": "demo-satisfaction",
        "loaded": 1200,
        "sent": 700,
        "failed": 300,
        "rejected": {"invalid": 150, "opted_out": 50},
        "failed_reasons": {"gateway_unavailable": 100, "in_doubt": 200},
        "chunks": {"failed": 1, "in_doubt": 2, "sent": 3},
        "dry_run": False,
    }
    run_id = python(stack, INCOMPLETE_RUN, json.dumps(summary)).strip().splitlines()[-1]

    [note] = receiver.wait_for(lambda p: cid in text_of(p))
    assert note["subject"] == f"Campagne SMS {cid} : envois incomplets"
    body = note["body"]
    assert "Lots en échec : 1 ; lots en doute : 2." in body
    assert "1200 chargés, 700 envoyés, 300 non envoyés, 200 écartés" in body
    assert "Raisons : gateway_unavailable (100), in_doubt (200)" in body
    assert run_id in body  # the link to the run: Prefect related the event to it by itself
    assert_no_secret(stack, note)

    [event] = events_of(stack, f"survey.campaign.{cid}", alerts.INCOMPLETE_EVENT)
    assert f"prefect.flow-run.{run_id}" in {r.id for r in event.related}


# -- the rule --------------------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "campaign_id": "c",
    "loaded": 10,
    "sent": 8,
    "failed": 2,
    "rejected": {"invalid": 0},
    "failed_reasons": {"gateway_error": 2},
    "dry_run": False,
}


@pytest.mark.parametrize(
    ("chunks", "dry_run", "alert"),
    [
        ({"sent": 3}, False, False),
        ({"sent": 2, "cancelled": 1}, False, False),  # called off by the operator
        ({"sent": 2, "sending": 1}, False, False),  # another run of the campaign still at it
        ({}, False, False),  # nothing to send (all rejected)
        ({"sent": 2, "failed": 1}, False, True),
        ({"sent": 2, "in_doubt": 1}, False, True),
        ({"failed": 1, "in_doubt": 1}, False, True),
        ({"failed": 1}, True, False),  # a dry run sends nothing
    ],
)
def test_which_campaigns_are_incomplete(chunks: dict[str, int], dry_run: bool, alert: bool) -> None:
    payload = alerts.incomplete_payload({**BASE, "chunks": chunks, "dry_run": dry_run})
    assert (payload is not None) is alert
    if payload is not None:
        assert payload == {
            "loaded": 10,
            "sent": 8,
            "failed": 2,
            "rejected": 0,
            "failed_chunks": chunks.get("failed", 0),
            "in_doubt_chunks": chunks.get("in_doubt", 0),
            "failed_reasons": {"gateway_error": 2},
        }


@given(
    st.dictionaries(
        st.sampled_from(["pending", "sending", "sent", "failed", "in_doubt", "cancelled"]),
        st.integers(0, 500),
    ),
    st.text(),
)
def test_the_payload_is_counts_only(chunks: dict[str, int], text: str) -> None:
    summary = {**BASE, "chunks": chunks, "report_dir": text, "slot_explanations": {"FR": text}}
    payload = alerts.incomplete_payload(summary)
    assert (payload is not None) is bool(chunks.get("failed") or chunks.get("in_doubt"))
    if payload is not None:
        reasons = payload.pop("failed_reasons")
        assert all(isinstance(v, int) for v in [*payload.values(), *reasons.values()])


def test_the_file_names_its_block_by_placeholder() -> None:
    filled = alerts.with_block(alerts.load_automations(alerts.AUTOMATIONS_FILE), "B-ID")
    notify = [x for a in filled for x in a["actions"] if x["type"] == "send-notification"]
    assert len(notify) == 3 and {x["block_document_id"] for x in notify} == {"B-ID"}
    assert alerts.BLOCK_PLACEHOLDER not in json.dumps(filled)
    assert alerts.split_block_slug(BLOCK) == ("custom-webhook", "campaign-alerts")
    for wrong in ("campaign-alerts", "/campaign-alerts", "custom-webhook/", "a/b/c"):
        with pytest.raises(alerts.AlertsError):
            alerts.split_block_slug(wrong)
