"""The Python clients, blocking (authz.client) and asyncio (authz.aio), against real servers: the same
answers, every page, the token read as the CLI reads it, retries of UNAVAILABLE, deadlines by default."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from authz import aio, calls
from authz.client import Check, Client
from authz.server import DecisionServer, ServerConfig
from authz.server import create_server as create_decision_server
from authz.service import AuthorizerServicer
from authz.v1 import authorizer_pb2, authorizer_pb2_grpc
from tests.conftest import TOKEN, Stack

DECISION_TOKEN = "decision-token-0123456789"
CAROL_EDITS = ("user:carol", "report.edit", "report:rep-weekly-vision")
CHECKS = [Check(*CAROL_EDITS), Check("user:dave", "report.edit", "report:rep-weekly-vision"), Check("anonymous",
          "report.view", "report:rep-benchmarks")]  # fmt: skip


def test_async_client_answers_as_the_blocking_one(stack: Stack) -> None:
    """authz.aio.Client: check, batch_check and both list calls (every page), as the blocking client."""
    sync = stack.client

    async def main() -> tuple[Any, ...]:
        async with aio.Client(stack.address) as client:
            return await asyncio.gather(
                client.check(*CAROL_EDITS, explain=True),
                client.batch_check(CHECKS),
                client.list_resources("user:carol", "run.view", "run", page_size=1),
                client.list_resources("user:carol", "run.view", "run", page_size=2, all_pages=False),
                client.list_subjects("report.edit", "report:rep-weekly-vision", page_size=1),
            )

    decision, batch, runs, first, editors = asyncio.run(main())
    assert decision == sync.check(*CAROL_EDITS, explain=True)
    assert decision.allowed
    assert "RP3" in decision.rules
    assert batch == sync.batch_check(CHECKS)
    assert [d.allowed for d in batch] == [True, False, True]
    every_run = sync.list_resources("user:carol", "run.view", "run")
    assert len(every_run.ids) > 2
    assert runs.ids == every_run.ids
    assert runs.next_page_token == ""
    assert first.ids == every_run.ids[:2]
    assert first.next_page_token
    assert "carol" in editors.ids
    assert editors.ids == sync.list_subjects("report.edit", "report:rep-weekly-vision").ids


def test_async_client_raises_the_services_refusals(stack: Stack) -> None:
    """Malformed references are ValueError before any call; the service's refusals are grpc.RpcError."""

    async def main() -> None:
        async with aio.Client(stack.address) as client:
            with pytest.raises(ValueError, match="kind:id"):
                await client.check("bob", "report.edit", "report:x")
            with pytest.raises(grpc.RpcError) as info:
                await client.check("user:b b", "report.edit", "report:x")
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "subject.id" in (info.value.details() or "")

    asyncio.run(main())


# ---- the token ----------------------------------------------------------------------------------


@pytest.fixture
def guarded(stack: Stack) -> Iterator[DecisionServer]:
    """A decision service on loopback that requires a token, following the stack's store."""
    server = create_decision_server(
        ServerConfig(listen="127.0.0.1:0", store=f"127.0.0.1:{stack.store.port}", store_token=TOKEN,
                     policies=stack.policies, require_token=True, token=DECISION_TOKEN)
    )  # fmt: skip
    try:
        assert server.replica.wait_for(stack.store_client.revision(), 30)
        yield server
    finally:
        server.stop(0)


def _sync_check(address: str, token: str | None) -> grpc.StatusCode:
    with Client(address, token=token) as client:
        try:
            client.check(*CAROL_EDITS)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def _async_check(address: str, token: str | None) -> grpc.StatusCode:
    async def main() -> grpc.StatusCode:
        async with aio.Client(address, token=token) as client:
            try:
                await client.check(*CAROL_EDITS)
            except grpc.RpcError as exc:
                return exc.code()
        return grpc.StatusCode.OK

    return asyncio.run(main())


@pytest.mark.parametrize("call", [_sync_check, _async_check], ids=["sync", "aio"])
def test_token_as_the_cli_reads_it(
    guarded: DecisionServer, call: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No token given: $AUTHZ_TOKEN, else var/authz.token when it exists; an explicit one wins; "" sends none."""
    address = f"127.0.0.1:{guarded.port}"
    monkeypatch.chdir(tmp_path)  # no var/authz.token here yet
    monkeypatch.delenv("AUTHZ_TOKEN", raising=False)
    assert call(address, None) == grpc.StatusCode.UNAUTHENTICATED
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "authz.token").write_text(DECISION_TOKEN + "\n")
    assert call(address, None) == grpc.StatusCode.OK
    assert call(address, "") == grpc.StatusCode.UNAUTHENTICATED
    assert call(address, "wrong-token-0123456789") == grpc.StatusCode.UNAUTHENTICATED
    monkeypatch.setenv("AUTHZ_TOKEN", "wrong-token-0123456789")
    assert call(address, None) == grpc.StatusCode.UNAUTHENTICATED, "the environment comes before the file"
    monkeypatch.setenv("AUTHZ_TOKEN", DECISION_TOKEN)
    (tmp_path / "var" / "authz.token").unlink()
    assert call(address, None) == grpc.StatusCode.OK
    assert call(address, DECISION_TOKEN) == grpc.StatusCode.OK


# ---- retries and deadlines ------------------------------------------------------------------------


class Flaky(AuthorizerServicer):
    """The real servicer over the stack's decider, failing its first ``failures`` calls with ``code``
    (or, with ``hang``, holding every call until released): a service restarting, overloaded, stuck."""

    def __init__(self, stack: Stack, failures: int, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
        super().__init__(stack.decision.decider)
        self.failures = failures
        self.code = code
        self.calls = 0
        self.hang = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()

    def _attempt(self, context: grpc.ServicerContext) -> None:
        with self._lock:
            self.calls += 1
            failing = self.calls <= self.failures
        if self.hang.is_set():
            self.release.wait(30)
        if failing:
            context.abort(self.code, f"failing on purpose ({self.calls})")

    def Check(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._attempt(context)
        return super().Check(request, context)

    def ListResources(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._attempt(context)
        return super().ListResources(request, context)


@pytest.fixture
def flaky(stack: Stack) -> Iterator[tuple[Flaky, str]]:
    servicer = Flaky(stack, failures=0)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    authorizer_pb2_grpc.add_AuthorizerServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        servicer.release.set()
        server.stop(0).wait()


def test_unavailable_is_retried(flaky: tuple[Flaky, str]) -> None:
    """Two UNAVAILABLE answers, then the real one: the caller sees the answer, after three attempts."""
    servicer, address = flaky
    servicer.failures = 2
    with Client(address, token="") as client:
        assert client.check(*CAROL_EDITS).allowed
    assert servicer.calls == 3


def test_async_client_retries_too(flaky: tuple[Flaky, str]) -> None:
    """The asyncio client has the same call policy: ListResources retried through two UNAVAILABLEs."""
    servicer, address = flaky
    servicer.failures = 2

    async def main() -> calls.Listing:
        async with aio.Client(address, token="") as client:
            return await client.list_resources("user:carol", "report.edit", "report")

    assert "rep-weekly-vision" in asyncio.run(main()).ids
    assert servicer.calls == 3


def test_retries_stop_at_the_attempt_limit(flaky: tuple[Flaky, str]) -> None:
    """A service that stays UNAVAILABLE: the caller gets UNAVAILABLE after at most MAX_ATTEMPTS attempts."""
    servicer, address = flaky
    servicer.failures = 1000
    with Client(address, token="") as client, pytest.raises(grpc.RpcError) as info:
        client.check(*CAROL_EDITS)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert 1 < servicer.calls <= calls.MAX_ATTEMPTS


@pytest.mark.parametrize("code", [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL])
def test_other_statuses_are_not_retried(flaky: tuple[Flaky, str], code: grpc.StatusCode) -> None:
    """Only UNAVAILABLE is retried: any other status is the answer, after one attempt."""
    servicer, address = flaky
    servicer.failures, servicer.code = 1, code
    with Client(address, token="") as client, pytest.raises(grpc.RpcError) as info:
        client.check(*CAROL_EDITS)
    assert info.value.code() == code
    assert servicer.calls == 1


def test_every_call_has_a_deadline(flaky: tuple[Flaky, str]) -> None:
    """A call the service never answers ends with DEADLINE_EXCEEDED at the client's timeout, in both
    clients, instead of waiting forever; the default timeout is calls.DEFAULT_TIMEOUT."""
    servicer, address = flaky
    servicer.hang.set()
    assert Client(address).timeout == calls.DEFAULT_TIMEOUT == 10.0
    with Client(address, token="", timeout=0.3) as client, pytest.raises(grpc.RpcError) as info:
        client.check(*CAROL_EDITS)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

    async def main() -> grpc.StatusCode:
        async with aio.Client(address, token="", timeout=0.3) as client:
            assert client.timeout == 0.3
            try:
                await client.check(*CAROL_EDITS)
            except grpc.RpcError as exc:
                return exc.code()
        return grpc.StatusCode.OK

    assert asyncio.run(main()) == grpc.StatusCode.DEADLINE_EXCEEDED


def test_retry_policy_names_only_the_read_calls() -> None:
    """The service config retries every call of the service: each one is a read."""
    described = {m.name for m in authorizer_pb2.DESCRIPTOR.services_by_name["Authorizer"].methods}
    names = calls.SERVICE_CONFIG["methodConfig"][0]["name"]  # type: ignore[index]
    assert {n["method"] for n in names} == set(calls.IDEMPOTENT) == described


def test_an_unreachable_revision_is_not_retried(stack: Stack) -> None:
    """The service answers UNAVAILABLE just before the deadline for a revision it never reaches, and says not
    to retry it: both clients get that answer, with its details, rather than DEADLINE_EXCEEDED."""
    with Client(stack.address, timeout=1) as client, pytest.raises(grpc.RpcError) as info:
        client.check(*CAROL_EDITS, min_revision=10**9)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "revision 1000000000" in (info.value.details() or "")

    async def main() -> grpc.RpcError:
        async with aio.Client(stack.address, timeout=1) as client:
            try:
                await client.check(*CAROL_EDITS, min_revision=10**9)
            except grpc.RpcError as exc:
                return exc
        raise AssertionError("allowed at a revision the store never reached")

    error = asyncio.run(main())
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "revision 1000000000" in (error.details() or "")
