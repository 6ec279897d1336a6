"""The "Model exports" FastAPI app, mounted by the Airflow api-server under ``/exportflow``.

Airflow mounts plugin apps as they are: it adds no authentication of its own. Every route here
therefore resolves the caller with Airflow's own ``get_user`` (the ``GetUserDep`` dependency of the
core API: a ``Bearer`` JWT, else the ``_token`` cookie the Airflow UI sets at login and the browser sends
with the iframe's requests) and checks ``is_authorized_dag`` for the model's DAG with Airflow's own
``requires_access_dag``. Without a valid login an HTML page redirects to Airflow's login form and a JSON
endpoint answers 401; a token for a user who may not read the DAG's runs gets 403.

Pages are rendered server-side (Jinja2 with autoescaping, inline SVG): nothing is loaded from a CDN.
The JSON endpoints are documented in ``plugins/ui/API.md``.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException

from components.config import ConfigError, PipelineConfig, load_configs_dir
from components.errors import ExportflowError
from components.model_storage import ModelStorage
from plugins.ui import chart as chart_layout
from plugins.ui.history import ModelHistory, UnknownMetric, build_history, dag_id_for, jsonable
from plugins.ui.manifest import ManifestView, manifest_view
from plugins.ui.serving import RunRow, ServingView, run_view, serving_view

HERE = Path(__file__).resolve().parent
API_DOC = "plugins/ui/API.md"
ROUTES = {
    "index_page": "/ui/",
    "model_page": "/ui/models/{model}",
    "manifest_page": "/ui/models/{model}/versions/{strategy}/{version}",
    "icon": "/ui/icon.svg",
    "models_json": "/api/models",
    "model_json": "/api/models/{model}",
    "serving_json": "/api/models/{model}/serving",
    "manifest_json": "/api/models/{model}/versions/{strategy}/{version}/manifest",
}


def url_for(request: Request, name: str, **params: Any) -> str:
    """The path of one of ``ROUTES`` under wherever Airflow mounted this app (its ``root_path``, ``/exportflow``)."""
    path = ROUTES[name].format(**{key: quote(str(value), safe="") for key, value in params.items()})
    return f"{request.scope.get('root_path', '').rstrip('/')}{path}"


async def current_user(request: Request) -> Any:
    """Airflow's ``GetUserDep``, called explicitly so the heavy core-API modules load only when served."""
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    return await get_user(request, None, await bearer_scheme(request))


def authorize_model(request: Request, model: str, user: Any) -> None:
    """Raise 403 unless ``user`` may read the runs of the model's DAG (Airflow's own check)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=dag_id_for(model))(request, user)


def airflow_root() -> str:
    """The Airflow UI's path prefix (from ``[api] base_url``), for links to DAGs and runs."""
    from airflow.api_fastapi.app import API_ROOT_PATH

    return API_ROOT_PATH


def login_url(request: Request) -> str:
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().get_url_login(next_url=str(request.url))


def model_storage(config: PipelineConfig) -> ModelStorage:
    """The model's storage and ledger with its Airflow connection, as every task reaches them."""
    from plugins.credentials import credentials_for

    return ModelStorage(config, credentials_for(config))


RECENT_RUNS = 25


class RunsUnavailable(Exception):
    """Airflow's REST API did not answer the run list (the panel says so and still shows the rest)."""


def recent_runs(request: Request, dag_ids: list[str], limit: int = RECENT_RUNS) -> list[RunRow]:
    """The newest DAG runs of ``dag_ids`` (any state, dry runs included) from Airflow's public REST API,
    ``POST /api/v2/dags/~/dagRuns/list``, asked *as the caller*: with their own token, so Airflow applies
    its own rule of which runs they may read. The request goes to the api-server's own app in this
    process (this app is mounted in it): no network hop, no base URL to configure, and no ORM session in
    a plugin, which Airflow 3 reserves for its own API."""
    import anyio.from_thread
    import httpx

    body = {"dag_ids": dag_ids, "order_by": "-id", "page_limit": limit}
    headers = {"Authorization": f"Bearer {caller_token(request)}"}

    async def ask() -> httpx.Response:
        transport = httpx.ASGITransport(app=api_server_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://api-server") as client:
            return await client.post("/api/v2/dags/~/dagRuns/list", json=body, headers=headers)

    response = anyio.from_thread.run(ask)  # a sync route runs in a worker thread of the server's loop
    if response.status_code != 200:
        raise RunsUnavailable(f"POST /api/v2/dags/~/dagRuns/list answered {response.status_code}: {response.text[:200]}")
    return [RunRow.from_api(item) for item in response.json()["dag_runs"]]


def caller_token(request: Request) -> str:
    """The caller's Airflow JWT: the ``Bearer`` header, else the UI's login cookie (as ``get_user`` reads
    them). Passed on to Airflow's API only, never logged."""
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return token
    return request.cookies.get(COOKIE_NAME_JWT_TOKEN, "")


def api_server_app() -> Any:
    """The api-server's FastAPI app this plugin is mounted in (the instance ``airflow.api_fastapi.main``
    serves; ``cached_app`` returns it for the same arguments)."""
    import os

    from airflow.api_fastapi.app import cached_app

    return cached_app(apps=os.environ.get("AIRFLOW_API_APPS", "all"))


def serving_of(config: PipelineConfig, runs: Callable[[list[str]], list[Any]]) -> ServingView:
    """The serving panel: the model server config and label history (``serving.mode: labels``), and the
    model's recent runs. A storage or database error is shown in the panel, not as a failed page."""
    from components.serving import control
    from plugins.promote_dag import promote_dag_id

    root = airflow_root()
    dag_ids = [dag_id_for(config.name)]
    if config.serving.mode == "labels":
        dag_ids.append(promote_dag_id(config.name))
    try:
        found, runs_error = [run_view(row, root) for row in runs(dag_ids)], None
    except Exception as exc:  # noqa: BLE001 - the rest of the page must still render
        found, runs_error = [], f"cannot read the DAG runs from Airflow: {type(exc).__name__}: {exc}"
    if config.serving.mode != "labels":
        return serving_view(config, None, found, airflow_root=root, runs_error=runs_error)
    try:
        target = control.target_for(config, model_storage(config).destination())
        statuses = control.status(config, target.storage)
        published = {s.servable: control.published_versions(target, s.servable) for s in statuses}
    except ExportflowError as exc:
        return serving_view(
            config, None, found, airflow_root=root, error=f"cannot read the serving state: {exc}", runs_error=runs_error
        )
    return serving_view(
        config, statuses, found, published, airflow_root=root, config_uri=target.config_uri, runs_error=runs_error
    )


def configs_folder() -> str:
    from plugins.dag_factory import configs_folder as folder

    return folder()


class ModelCatalog:
    """Model configs by name, re-read on every request so a new or edited config shows up at once."""

    def __init__(self, folder: Callable[[], str]) -> None:
        self._folder = folder

    def load(self) -> tuple[dict[str, PipelineConfig], list[ConfigError]]:
        configs: dict[str, PipelineConfig] = {}
        errors: list[ConfigError] = []
        for loaded in load_configs_dir(self._folder()).values():
            if isinstance(loaded, ConfigError):
                errors.append(loaded)
            elif loaded.name not in configs:
                configs[loaded.name] = loaded
        return configs, errors

    def get(self, model: str) -> PipelineConfig:
        config = self.load()[0].get(model)
        if config is None:
            raise HTTPException(404, f"no model named {model!r} is configured in {self._folder()}")
        return config


def create_app(
    catalog: ModelCatalog | None = None,
    user_dependency: Callable[..., Any] = current_user,
    authorize: Callable[[Request, str, Any], None] = authorize_model,
    runs: Callable[[Request, list[str]], list[Any]] = recent_runs,
) -> FastAPI:
    """The app Airflow mounts. ``user_dependency``, ``authorize`` and ``runs`` (the caller's request and
    DAG ids -> run rows from Airflow) are the seams tests may replace."""
    catalog = catalog or ModelCatalog(configs_folder)
    templates = _templates()
    app = FastAPI(
        title="exportflow: Model exports",
        description=f"Export history per model, read from its ledger. Endpoints are documented in {API_DOC}.",
        docs_url=None,  # Swagger UI and ReDoc load scripts from a CDN
        redoc_url=None,
        openapi_url=None,
    )
    User = Depends(user_dependency)  # the login every route requires

    @app.exception_handler(StarletteHTTPException)
    async def refuse(request: Request, exc: StarletteHTTPException) -> Response:
        """No login on a page: send the browser to Airflow's login form, which comes back here."""
        if _wants_html(request):
            if exc.status_code == 401:
                return RedirectResponse(login_url(request), status_code=303, headers=_SECURITY_HEADERS)
            title = _ERROR_TITLES.get(exc.status_code, "Something went wrong")
            response = page(request, "error.html", status=exc.status_code, title=title, detail=exc.detail)
            response.status_code = exc.status_code
            return response
        response = await http_exception_handler(request, exc)
        response.headers.update(_SECURITY_HEADERS)
        return response

    def history_of(request: Request, model: str, user: Any, metric: str | None) -> ModelHistory:
        authorize(request, model, user)
        config = catalog.get(model)
        try:
            state = model_storage(config).ledger().load()
        except ExportflowError as exc:
            raise HTTPException(502, f"cannot read the ledger of {model}: {exc}") from exc
        try:
            return build_history(config, state, metric=metric, airflow_root=airflow_root())
        except UnknownMetric as exc:
            raise HTTPException(400, str(exc)) from exc

    def manifest_of(history: ModelHistory, strategy: str, version: str) -> tuple[Any, Any, ManifestView]:
        found = history.publication(strategy, version)
        if found is None:
            raise HTTPException(
                404, f"{history.model} has no version {version!r} published by strategy {strategy!r}"
            )
        checkpoint, publication = found
        try:  # the manifest's location comes from the ledger, never from the request
            storage = model_storage(catalog.get(history.model)).for_uri(publication.manifest_uri)
            return checkpoint, publication, manifest_view(publication.manifest_uri, storage)
        except ExportflowError as exc:
            raise HTTPException(502, str(exc)) from exc

    def page(request: Request, template: str, **context: Any) -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        html = templates.get_template(template).render(
            request=request,
            url=lambda name, **params: url_for(request, name, **params),
            airflow_root=airflow_root(),
            nonce=nonce,
            **context,
        )
        headers = {**_SECURITY_HEADERS, "Content-Security-Policy": _CSP.format(nonce=nonce)}
        return HTMLResponse(html, headers=headers)

    @app.get("/", include_in_schema=False)
    def root(request: Request) -> RedirectResponse:
        return RedirectResponse(url_for(request, "index_page"))

    # --- HTML -------------------------------------------------------------------------------------------

    @app.get(ROUTES["index_page"], response_class=HTMLResponse)
    def index_page(request: Request, user: Any = User) -> HTMLResponse:
        return page(request, "index.html", **_index(request, user, catalog, authorize))

    @app.get(ROUTES["model_page"], response_class=HTMLResponse)
    def model_page(request: Request, model: str, metric: str | None = None, user: Any = User) -> HTMLResponse:
        history = history_of(request, model, user, metric)
        serving = serving_of(catalog.get(model), lambda dag_ids: runs(request, dag_ids))
        return page(request, "model.html", h=history, plot=chart_layout.plot(history.chart), serving=serving)

    @app.get(ROUTES["manifest_page"], response_class=HTMLResponse)
    def manifest_page(
        request: Request, model: str, strategy: str, version: str, user: Any = User
    ) -> HTMLResponse:
        history = history_of(request, model, user, None)
        checkpoint, publication, manifest = manifest_of(history, strategy, version)
        return page(request, "manifest.html", h=history, checkpoint=checkpoint, pub=publication, m=manifest)

    @app.get(ROUTES["icon"], include_in_schema=False)
    def icon(user: Any = User) -> Response:
        return Response((HERE / "templates" / "icon.svg").read_bytes(), media_type="image/svg+xml")

    # --- JSON (documented in API.md) ------------------------------------------------------------------

    @app.get(ROUTES["models_json"])
    def models_json(request: Request, user: Any = User) -> JSONResponse:
        return _json(_index(request, user, catalog, authorize))

    @app.get(ROUTES["model_json"])
    def model_json(request: Request, model: str, metric: str | None = None, user: Any = User) -> JSONResponse:
        return _json(jsonable(history_of(request, model, user, metric)))

    @app.get(ROUTES["serving_json"])
    def serving_json(request: Request, model: str, user: Any = User) -> JSONResponse:
        authorize(request, model, user)
        return _json(jsonable(serving_of(catalog.get(model), lambda dag_ids: runs(request, dag_ids))))

    @app.get(ROUTES["manifest_json"])
    def manifest_json(
        request: Request, model: str, strategy: str, version: str, user: Any = User
    ) -> JSONResponse:
        return _json(manifest_of(history_of(request, model, user, None), strategy, version)[2].raw)

    return app


def _index(
    request: Request, user: Any, catalog: ModelCatalog, authorize: Callable[[Request, str, Any], None]
) -> dict[str, Any]:
    """Every configured model the user may read, with a one-line summary from its ledger."""
    configs, errors = catalog.load()
    models = []
    for name, config in sorted(configs.items()):
        try:
            authorize(request, name, user)
        except HTTPException as exc:
            if exc.status_code == 403:
                continue
            raise
        models.append(_summary(request, config))
    return {
        "models": models,
        "config_errors": [str(e) for e in errors],
    }


def _summary(request: Request, config: PipelineConfig) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "model": config.name,
        "dag_id": dag_id_for(config.name),
        "destination": config.destination.uri,
        "page_url": url_for(request, "model_page", model=config.name),
        "json_url": url_for(request, "model_json", model=config.name),
        "checkpoints": 0,
        "evaluated": 0,
        "blessed": 0,
        "published": 0,
        "latest_published": None,
        "best_step": None,
        "error": None,
    }
    try:
        state = model_storage(config).ledger().load()
        history = build_history(config, state, airflow_root=airflow_root())
    except ExportflowError as exc:
        summary["error"] = f"cannot read the ledger: {exc}"
        return summary
    rows = history.checkpoints
    published = [r for r in rows if r.publications]
    summary.update(
        checkpoints=len(rows),
        evaluated=sum(1 for r in rows if r.evaluated),
        blessed=sum(1 for r in rows if r.blessed),
        published=len(published),
        latest_published=published[0].step if published else None,
        best_step=history.best_step,
    )
    return summary


def _json(data: Any) -> JSONResponse:
    return JSONResponse(data, headers=_SECURITY_HEADERS)


def _wants_html(request: Request) -> bool:
    """Pages live under ``/ui/``; everything under ``/api/`` is JSON for scripts."""
    return not request.url.path.startswith(f"{request.scope.get('root_path', '')}/api/")


_ERROR_TITLES = {
    400: "Bad request",
    403: "Not allowed: you may not read this model's DAG runs",
    404: "Not found",
    502: "The model's ledger or manifest could not be read",
}
_SECURITY_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
# Nothing from elsewhere: no CDN, no remote fonts. Framed only by Airflow's own UI (same origin).
_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; script-src 'nonce-{nonce}'; "
    "connect-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'self'"
)


def _templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        metric=format_metric, size=format_size, when=format_time, urlpart=lambda s: quote(str(s), safe="")
    )
    env.globals["to_json"] = lambda value: json.dumps(jsonable(value), indent=1, sort_keys=True)
    return env


def format_metric(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def format_size(num_bytes: int | None) -> str:
    if not num_bytes:
        return "—"
    size = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{num_bytes} B"  # pragma: no cover - the loop always returns


def format_time(iso: str | None) -> str:
    if not iso:
        return "—"
    return iso.replace("T", " ")[:19]  # stamped in UTC; the column header says so
