"""exportflow's Airflow plugin: the "Model exports" page in the Airflow UI.

The api-server mounts the page's app (``plugins/ui``) at ``/exportflow``; the UI lists it under Browse and
shows it in a frame at ``/plugin/model-exports``. The app authenticates every request with Airflow's own
login (see ``plugins/ui/app.py``). Nothing here imports TensorFlow.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/exportflow"


class LazyApp:
    """The page's ASGI app, built on its first request.

    Every task process loads plugins too (for listeners and macros) and needs none of FastAPI or Jinja.
    """

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            from plugins.ui.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


class ExportflowPlugin(AirflowPlugin):
    name = "exportflow"
    fastapi_apps: ClassVar[list[Any]] = [
        {"app": LazyApp(), "url_prefix": URL_PREFIX, "name": "exportflow model exports"}
    ]
    external_views: ClassVar[list[Any]] = [
        {
            "name": "Model exports",
            "href": f"{URL_PREFIX}/ui/",
            "url_route": "model-exports",
            "destination": "nav",
            "category": "browse",
            "icon": f"{URL_PREFIX}/ui/icon.svg",
        }
    ]
