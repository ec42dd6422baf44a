"""gunicorn settings. Threaded workers: long upstream calls (AI generation) wait on I/O and must
not starve the pool, so each process serves many requests at once."""
import os

bind = os.environ.get("WAULE_BIND", "127.0.0.1:5000")
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WAULE_THREADS", "16"))
timeout = int(os.environ.get("WAULE_WORKER_TIMEOUT", "120"))
graceful_timeout = 20
keepalive = 5
accesslog = "-"
errorlog = "-"
# Never log query strings or headers that could carry credentials.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'
# gunicorn's control socket would live in the home directory; nothing here uses it.
control_socket_disable = True


def post_worker_init(worker):
    """Listen for cache invalidations (app/core/cache.py) from the worker's start, not its first
    request. After the fork by necessity: a connection or thread opened before it would be shared or gone."""
    caches = getattr(worker.wsgi, "extensions", {}).get("waule.cache")
    if caches is not None:
        caches.listen()
