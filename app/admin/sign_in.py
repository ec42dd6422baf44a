"""Dashboard sign-in and sign-out."""
from __future__ import annotations

from flask import redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from app.admin import bp
from app.admin.auth import safe_next
from app.admin.forms import Form, text
from app.core.errors import Throttled, Unauthenticated
from app.identity import admins


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_url = safe_next(request.values.get("next"))
    if request.method == "GET" and current_user.is_authenticated:
        return redirect(next_url)
    form, status, headers = Form(), 200, {}
    if request.method == "POST":
        username = text(request.form, "username")
        form = Form({"username": username})
        try:
            admin = admins.sign_in(username, request.form.get("password", ""), request.remote_addr)
        except Throttled as error:
            form.message = f"Too many attempts, try again in {error.retry_after} s."
            status, headers = 429, {"Retry-After": str(error.retry_after)}
        except Unauthenticated:
            form.message = "Invalid username or password."
            status = 401
        else:
            session.clear()
            session.permanent = True  # expires after ADMIN_SESSION_MINUTES without a request
            login_user(admin)
            return redirect(next_url)
    return render_template("admin/login.html", form=form, next=next_url), status, headers


@bp.post("/logout")
def logout():
    logout_user()
    session.clear()
    return redirect(url_for("admin.login"))
