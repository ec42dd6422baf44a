"""Flask extensions, created unbound; `create_app` binds them with `init_app`."""
from flask_jwt_extended import JWTManager
from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect

from app.core.db import Base

db = SQLAlchemy(model_class=Base)
login_manager = LoginManager()
jwt = JWTManager()
csrf = CSRFProtect()
