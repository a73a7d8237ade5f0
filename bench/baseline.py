"""The comparison point: the same Neon endpoints pulled by a plain dlt `rest_api` source in the
style of dltHub's generated "Neon Python API" page, with dlt's default settings (sequential).

Two things from that page are corrected, or the baseline would not finish or would read the
wrong endpoints: projects stop on an empty page (Neon always returns a cursor), and databases
and roles are read per branch.
"""

from __future__ import annotations

from typing import Any

import dlt
from dlt.sources.rest_api import rest_api_source

CURSOR_PAGINATOR = {
    "type": "cursor",
    "cursor_path": "pagination.cursor",
    "cursor_param": "cursor",
    "stop_after_empty_page": True,
}


def baseline_source(base_url: str, api_key: str) -> Any:
    config: dict[str, Any] = {
        "client": {
            "base_url": base_url.rstrip("/") + "/",
            "auth": {"type": "bearer", "token": api_key},
        },
        "resource_defaults": {"write_disposition": "replace"},
        "resources": [
            {
                "name": "organizations",
                "endpoint": {
                    "path": "users/me/organizations",
                    "data_selector": "organizations",
                    "paginator": "single_page",
                },
            },
            {
                "name": "regions",
                "endpoint": {
                    "path": "regions",
                    "data_selector": "regions",
                    "paginator": "single_page",
                    "params": {"org_id": "{resources.organizations.id}"},
                },
            },
            {
                "name": "projects",
                "endpoint": {
                    "path": "projects",
                    "data_selector": "projects",
                    "paginator": CURSOR_PAGINATOR,
                    "params": {"org_id": "{resources.organizations.id}"},
                },
            },
            {
                "name": "project_branches",
                "endpoint": {
                    "path": "projects/{resources.projects.id}/branches",
                    "data_selector": "branches",
                    "paginator": {
                        "type": "cursor",
                        "cursor_path": "pagination.next",
                        "cursor_param": "cursor",
                    },
                },
            },
            {
                "name": "endpoints",
                "endpoint": {
                    "path": "projects/{resources.projects.id}/endpoints",
                    "data_selector": "endpoints",
                    "paginator": "single_page",
                },
            },
            {
                "name": "operations",
                "endpoint": {
                    "path": "projects/{resources.projects.id}/operations",
                    "data_selector": "operations",
                    "paginator": CURSOR_PAGINATOR,
                },
            },
            {
                "name": "databases",
                "endpoint": {
                    "path": "projects/{resources.project_branches.project_id}/branches/{resources.project_branches.id}/databases",
                    "data_selector": "databases",
                    "paginator": "single_page",
                },
            },
            {
                "name": "roles",
                "endpoint": {
                    "path": "projects/{resources.project_branches.project_id}/branches/{resources.project_branches.id}/roles",
                    "data_selector": "roles",
                    "paginator": "single_page",
                },
            },
        ],
    }
    return rest_api_source(config, name="neon_baseline")


def run_baseline(base_url: str, api_key: str, warehouse: str) -> Any:
    pipeline = dlt.pipeline(
        pipeline_name="neon_baseline_pipeline",
        destination=dlt.destinations.duckdb(warehouse),
        dataset_name="neon_api_data",
    )
    pipeline = pipeline.drop()
    return pipeline.run(baseline_source(base_url, api_key))
