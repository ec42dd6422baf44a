"""The dashboard's home: headline counts, today's numbers, the latest changes."""
from __future__ import annotations

from flask import render_template

from app.admin import bp
from app.core.db import utcnow
from app.generation import usage
from app.identity import admins, audit, tenants


@bp.get("/")
def dashboard():
    latest, _total = audit.list_entries(per_page=10)
    return render_template("admin/dashboard.html", counts=tenants.counts(), admin_count=len(admins.list_admins()),
                           latest=latest, today=usage.platform_day(utcnow().date()))
