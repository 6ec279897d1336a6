"""exportflow's Airflow plugin: the "Model exports" page in the Airflow UI.

The api-server mounts the page's FastAPI app (``plugins/ui``) at ``/exportflow``; the UI lists it in its
navigation and shows it in a frame at ``/plugin/model-exports``. The app authenticates every request
with Airflow's own login (see ``plugins/ui/app.py``). Nothing here imports TensorFlow.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from plugins.ui.app import create_app

URL_PREFIX = "/exportflow"


class ExportflowPlugin(AirflowPlugin):
    name = "exportflow"
    fastapi_apps: ClassVar[list[Any]] = [
        {"app": create_app(), "url_prefix": URL_PREFIX, "name": "exportflow model exports"}
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
