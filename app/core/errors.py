"""Domain errors: services raise these, the API turns them into the error envelope and the
dashboard into form messages. Each carries the HTTP status and the envelope's type and code."""


class DomainError(Exception):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.param = param


class InvalidInput(DomainError):
    pass


class Unauthenticated(DomainError):
    status = 401
    type = "authentication_error"
    code = "unauthenticated"


class Forbidden(DomainError):
    status = 403
    type = "permission_error"
    code = "forbidden"


class NotFound(DomainError):
    status = 404
    type = "not_found_error"
    code = "not_found"


class Conflict(DomainError):
    status = 409
    type = "conflict_error"
    code = "conflict"


class Throttled(DomainError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None):
        super().__init__(message, code=code)
        self.retry_after = max(1, int(retry_after))
