"""Secrets in endpoint URLs never reach logs, reprs or exception messages."""

from __future__ import annotations

import json
import logging

import pytest

from tests.venue.http_fixtures import ScriptedServer
from venue.redact import redact_url
from venue.rpc_client import RpcTransportError, SolanaRpc

SECRET = "k3y-0123456789abcdefXYZ"


@pytest.mark.parametrize(("url", "visible"), [
    (f"https://mainnet.helius-rpc.com/?api-key={SECRET}", "mainnet.helius-rpc.com"),
    (f"https://x.rpcpool.com/{SECRET}", "x.rpcpool.com"),
    (f"https://user:{SECRET}@host.example:8443/p", "host.example:8443"),
])
def test_redact_url_hides_keys_keeps_host(url, visible) -> None:
    out = redact_url(url)
    assert SECRET not in out and visible in out


def test_a_keyed_endpoint_leaves_its_key_out_of_logs_reprs_and_errors(caplog) -> None:
    server = ScriptedServer()
    server.routes[("POST", "/")] = lambda _e: (
        200, json.dumps({"jsonrpc": "2.0", "id": 1, "result": 5}))
    try:
        with caplog.at_level(logging.DEBUG):
            rpc = SolanaRpc(f"{server.url}/?api-key={SECRET}", timeout_s=2)
            assert rpc.get_slot() == 5
            logging.getLogger("test").debug("client %r", rpc)
    finally:
        server.stop()
    with pytest.raises(RpcTransportError) as refused:  # the server is gone: connect fails
        SolanaRpc(f"{server.url}/?api-key={SECRET}", timeout_s=2).get_slot()
    assert "client SolanaRpc(" in caplog.text  # the repr was logged...
    assert SECRET not in caplog.text and SECRET not in str(refused.value)  # ...without the key
    assert server.requests[-1].query == f"api-key={SECRET}"  # the key was still sent
