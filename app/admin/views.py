from app.admin import bp


@bp.get("/")
def dashboard():
    return "Waule admin"
