"""The waule-api gateways in the JSON admin API; their secrets go in and never come out."""
from __future__ import annotations

from flask import jsonify

from app.admin.api import TAGS, admin_actor, api_bp
from app.api.openapi import endpoint
from app.gateway import registry as gateways
from app.schemas import dump
from app.schemas.gateway import (ConnectionTestIn, ConnectionTestOut, GatewayCreateIn, GatewayListOut, GatewayOut,
                                 GatewayUpdateIn)


def _gateway(row) -> dict:
    return dump(GatewayOut, {**{name: getattr(row, name) for name in GatewayOut.model_fields if name != "id"},
                             "id": str(row.id)})


@api_bp.get("/gateways")
@endpoint("The waule-api gateways with their health counters (never their secrets)", response=GatewayListOut,
          errors=(401,), tags=TAGS)
def list_gateways():
    return jsonify({"object": "list", "data": [_gateway(row) for row in gateways.list_gateways()]})


@api_bp.post("/gateways")
@endpoint("Add a gateway", body=GatewayCreateIn, response=GatewayOut, status=201, errors=(401, 409), tags=TAGS)
def create_gateway(body: GatewayCreateIn):
    return jsonify(_gateway(gateways.create_gateway(admin_actor(), **body.model_dump()))), 201


@api_bp.patch("/gateways/<gateway_id>")
@endpoint("Change a gateway, replace its secret, or (de)activate it", body=GatewayUpdateIn, response=GatewayOut,
          errors=(401, 404, 409), tags=TAGS)
def update_gateway(gateway_id: str, body: GatewayUpdateIn):
    return jsonify(_gateway(gateways.update_gateway(gateway_id, admin_actor(), body.model_dump(exclude_unset=True))))


@api_bp.post("/gateways/<gateway_id>/test")
@endpoint("Call the gateway's /health with its credentials", body=ConnectionTestIn, response=ConnectionTestOut,
          errors=(401, 404), tags=TAGS)
def test_gateway(gateway_id: str, body: ConnectionTestIn):
    result = gateways.test_connection(gateway_id, admin_actor())
    return jsonify({"ok": result.ok, "detail": result.detail})
