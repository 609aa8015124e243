"""`SubscriptionDeliveryWorkflow`: sends one subscription's notifications, one at a time, in order.

The gateway fans an event out to a delivery row per matching subscription and, in the same
transaction, an outbox row that signal-with-starts this workflow (workflow id
`subscription-<id>`, signal `deliver`). One workflow per receiver keeps its deliveries in order:
a receiver that is down holds back the later ones until it answers or the retries give up.

Each delivery is the activity `deliver_notification` under a retry policy with exponential
backoff; once the policy gives up, `mark_delivery_dead` puts it in the dead-letter list, from
which an admin can replay it. The workflow ignores a repeated signal (the outbox delivers at least
once), the activity sends nothing for a delivery that is no longer pending, and the receiver gets
the same `Idempotency-Key` on every retry: effects exactly once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import smtplib
import time
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    import httpx

    from services.common.webhook_signature import SIGNATURE_HEADER, sign
    from services.common.webhook_target import TargetRefused, WebhookTarget, vet_target
    from workflows.contracts import (
        DELIVER_SIGNAL,
        SUBSCRIPTION_DELIVERY_WORKFLOW,
        DeliverNotificationInput,
        DeliverSignal,
        MarkDeliveryDeadInput,
        SubscriptionDeliveryInput,
    )
    from workflows.metrics import NOTIFICATIONS
    from workflows.service_api import ServiceApi

# Signals remembered for dedup: redeliveries come soon after the original; the activity's
# "still pending?" check catches anything older.
DEDUP_WINDOW = 1000
# Bookkeeping calls to the gateway retry on their own policy, for as long as the gateway is down.
_BOOKKEEPING_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
)


def _key(signal: DeliverSignal) -> str:
    return f"{signal.delivery_id}:{signal.generation}"


@workflow.defn(name=SUBSCRIPTION_DELIVERY_WORKFLOW)
class SubscriptionDeliveryWorkflow:
    """Delivers the notifications of one subscription in the order they were queued."""

    @workflow.init
    def __init__(self, input: SubscriptionDeliveryInput) -> None:
        # Built before any signal is handled: signal-with-start delivers the first signal in the
        # same activation as the start.
        self._policy = input.policy
        self._queue: list[DeliverSignal] = list(input.queue)
        self._seen: list[str] = list(input.seen[-DEDUP_WINDOW:])
        self._seen_set = set(self._seen)
        self._delivered = 0
        self._dead = 0

    @workflow.run
    async def run(self, input: SubscriptionDeliveryInput) -> dict[str, int]:
        """Deliver until idle for `policy.idle_seconds` (continuing as new when history grows)."""
        policy = self._policy
        while True:
            if workflow.info().is_continue_as_new_suggested():
                # Let signal handlers already started finish, so no accepted signal is dropped.
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    SubscriptionDeliveryInput(
                        subscription_id=input.subscription_id,
                        policy=policy,
                        queue=list(self._queue),
                        seen=list(self._seen),
                    )
                )
            if not self._queue:
                try:
                    await workflow.wait_condition(
                        lambda: bool(self._queue),
                        timeout=timedelta(seconds=policy.idle_seconds),
                    )
                except TimeoutError:
                    # Idle: end; the next event's signal-with-start begins a new run.
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    if not self._queue:
                        return {"delivered": self._delivered, "dead": self._dead}
                continue
            await self._deliver(self._queue[0])
            self._queue.pop(0)

    async def _deliver(self, item: DeliverSignal) -> None:
        policy = self._policy
        try:
            await workflow.execute_activity(
                "deliver_notification",
                DeliverNotificationInput(delivery_id=item.delivery_id, generation=item.generation),
                start_to_close_timeout=timedelta(seconds=policy.attempt_timeout_seconds),
                schedule_to_close_timeout=timedelta(seconds=policy.give_up_seconds),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=policy.initial_interval_seconds),
                    backoff_coefficient=policy.backoff_coefficient,
                    maximum_interval=timedelta(seconds=policy.max_interval_seconds),
                    maximum_attempts=policy.max_attempts,
                ),
            )
            self._delivered += 1
        except ActivityError as error:
            cause = error.cause
            reason = str(cause) if cause is not None else str(error)
            workflow.logger.warning(
                "delivery gave up", extra={"delivery_id": item.delivery_id, "error": reason}
            )
            await workflow.execute_activity(
                "mark_delivery_dead",
                MarkDeliveryDeadInput(
                    delivery_id=item.delivery_id, generation=item.generation, error=reason[:2000]
                ),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=_BOOKKEEPING_RETRY,
            )
            self._dead += 1

    @workflow.signal(name=DELIVER_SIGNAL)
    def deliver(self, signal: DeliverSignal) -> None:
        """Queue a delivery (a repeat of one already seen is ignored)."""
        key = _key(signal)
        if key in self._seen_set:
            return
        self._seen.append(key)
        self._seen_set.add(key)
        if len(self._seen) > DEDUP_WINDOW:
            self._seen_set.discard(self._seen.pop(0))
        self._queue.append(signal)

    @workflow.query
    def pending(self) -> list[int]:
        """Delivery ids waiting, head first."""
        return [item.delivery_id for item in self._queue]


def event_body(event: dict[str, Any]) -> bytes:
    """The webhook body of an event: compact JSON with keys in a fixed order."""
    document = {
        "id": event["event_id"],
        "type": event["type"],
        "team": event["team"],
        "occurred_at": event["occurred_at"],
        "subject": event["subject"],
        "data": event["data"],
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def email_text(event: dict[str, Any]) -> tuple[str, str]:
    """The subject line and plain-text body of an event's e-mail (no secrets, no markup)."""
    subject_ref = event.get("subject") or {}
    ref = f"{subject_ref.get('kind', 'item')} {subject_ref.get('id', '')}".strip()
    # Header values must stay on one line whatever the event carries.
    title = " ".join(f"[riskdesk] {event['type']}: {ref} ({event['team']})".split())
    lines = [
        f"Event: {event['type']}",
        f"Team: {event['team']}",
        f"About: {ref}",
        f"Occurred at: {event['occurred_at']}",
        f"Event id: {event['event_id']}",
        "",
    ]
    data = event.get("data") or {}
    if data:
        lines.append("Details:")
        lines.extend(f"  {name}: {data[name]}" for name in sorted(data))
    return title[:250], "\n".join(lines) + "\n"


class NotificationActivities:
    """Delivery activities; they reach the gateway (and receivers) through one HTTP client."""

    def __init__(self, api: ServiceApi) -> None:
        self.api = api
        self.settings = api.settings

    @activity.defn(name="deliver_notification")
    async def deliver_notification(self, input: DeliverNotificationInput) -> str:
        """Send one delivery and record the attempt; raises (to be retried) unless it got through."""
        path = f"/internal/deliveries/{input.delivery_id}"
        found = (await self.api.call("gateway", "GET", path)).json()
        delivery, subscription, event = found["delivery"], found["subscription"], found["event"]
        if delivery["status"] != "pending" or delivery["generation"] != input.generation:
            # Already delivered, dead, or replayed since this signal: nothing to send.
            return f"skipped ({delivery['status']})"
        if not subscription["active"]:
            await self.api.call(
                "gateway", "POST", f"{path}/dead", json={"error": "subscription deactivated"}
            )
            return "skipped (subscription deactivated)"
        started = time.monotonic()
        status_code: int | None = None
        error: str | None = None
        refused = False
        try:
            if subscription["channel"] == "webhook":
                # Checked again at each attempt: the host may resolve elsewhere than at creation.
                target = await vet_target(
                    subscription["url"],
                    allow_private=self.settings.webhook_allow_private_targets,
                )
                status_code = await self._post_webhook(subscription, event, target)
                if not 200 <= status_code < 300:
                    error = f"receiver answered {status_code}"
            else:
                await self._send_email(subscription, event)
        except TargetRefused as exc:
            error, refused = f"webhook target refused: the URL {exc}"[:2000], True
        except (httpx.HTTPError, OSError, smtplib.SMTPException) as exc:
            error = f"{type(exc).__name__}: {exc}"[:2000]
        duration_ms = int((time.monotonic() - started) * 1000)
        NOTIFICATIONS.labels(subscription["channel"], "failed" if error else "delivered").inc()
        await self.api.call(
            "gateway",
            "POST",
            f"{path}/attempts",
            json={
                "outcome": "failed" if error else "delivered",
                "status_code": status_code,
                "error": error,
                "duration_ms": duration_ms,
            },
        )
        if refused and error:
            # Nothing was sent; retrying a forbidden target is pointless: straight to dead-letter.
            raise ApplicationError(error, type="TargetRefused", non_retryable=True)
        if error:
            raise ApplicationError(error, type="DeliveryFailed")
        return "delivered"

    async def _post_webhook(
        self, subscription: dict[str, Any], event: dict[str, Any], target: WebhookTarget
    ) -> int:
        body = event_body(event)
        url = httpx.URL(target.url)
        extensions: dict[str, Any] = {}
        if target.addresses:
            # Connect to the address just vetted, not to a second lookup's answer (DNS
            # rebinding); the name still verifies the certificate (SNI) and fills `Host`.
            extensions["sni_hostname"] = target.host
            host_header = url.netloc.decode("ascii")
            url = url.copy_with(host=str(target.addresses[0]))
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(subscription["secret"], body, int(time.time())),
            "Idempotency-Key": event["event_id"],
            "X-Riskdesk-Event": event["type"],
            "User-Agent": "riskdesk-webhooks/1",
        }
        if target.addresses:
            headers["Host"] = host_header
        response = await self.api.http.post(
            url,
            content=body,
            headers=headers,
            timeout=self.settings.webhook_timeout_seconds,
            follow_redirects=False,
            extensions=extensions,
        )
        return response.status_code

    async def _send_email(self, subscription: dict[str, Any], event: dict[str, Any]) -> None:
        title, text = email_text(event)
        message = EmailMessage()
        message["From"] = self.settings.smtp_from
        message["To"] = subscription["email"]
        message["Subject"] = title
        # Stable per (event, subscription), so a mail client can drop a retried duplicate.
        digest = hashlib.sha256(f"{event['event_id']}|{subscription['id']}".encode()).hexdigest()
        message["Message-ID"] = f"<{digest[:32]}@riskdesk>"
        message.set_content(text)
        await asyncio.to_thread(self._smtp_send, message)

    def _smtp_send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(
            self.settings.smtp_host,
            self.settings.smtp_port,
            timeout=self.settings.webhook_timeout_seconds,
        ) as smtp:
            smtp.send_message(message)

    @activity.defn(name="mark_delivery_dead")
    async def mark_delivery_dead(self, input: MarkDeliveryDeadInput) -> None:
        """Put a delivery in the dead-letter list (a delivery gone or already final is left alone)."""
        await self.api.call(
            "gateway",
            "POST",
            f"/internal/deliveries/{input.delivery_id}/dead",
            json={"error": input.error or "retries exhausted", "generation": input.generation},
            ok_statuses=frozenset({404}),
        )

    def activities(self) -> list[Any]:
        """The activity callables to register on a worker."""
        return [self.deliver_notification, self.mark_delivery_dead]
