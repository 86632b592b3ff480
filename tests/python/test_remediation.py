"""Issue 11's demo must-show, end to end over MCP (official Python SDK, Streamable HTTP) against
the real binary in `--mode demo`: the embedded demo cluster (writes change only memory) and
the coordination store on a SQLite file in tmp.

- shop-frontend/product-catalog-qnvb6h6ls-l5njv was OOMKilled with a 256Mi limit;
  get-remediation-recommendations names it and the arguments to pass trigger-remediation;
- trigger-remediation, dry run: workflow oomkilled-raise-memory-limit (deployed manually)
  completes; its plan's patch raises the limit x2.5 to 640Mi (with max_memory=512Mi: capped at
  512Mi); nothing changed;
- run for real: unconfirmed, the server answers the dry run (this client cannot elicit);
  with `confirm: true` the workflow stops at its approval gate with the question;
  approve-remediation (confirmed too) lets it finish: completed, five steps in order; the Deployment's template says 640Mi with the
  256Mi request kept, and its pods were rolled out as a Deployment controller would: the old pod
  is gone, get-pod on each new one shows the 640Mi limit;
- the REST routes answer the same workflow (GET /api/v1/workflows/{id}, 404 for another id);
- restart on the same SQLite file: the incident (create-incident, whose id the runs carry) and
  the workflows are still there (get-incident with its workflows, get-remediation-status,
  list-remediation-history, cluster://remediation-history).

Run: PATH=$PWD/.deps/bin:$PATH pytest -q tests/python/test_remediation.py
"""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from conftest import deadline, http_server

pytestmark = pytest.mark.anyio

NS = "shop-frontend"
OOM_POD = "product-catalog-qnvb6h6ls-l5njv"


def demo_args(db: str) -> list[str]:
    return ["--mode", "demo", "--set", f"backends.coordination-store.url=sqlite:{db}"]


@asynccontextmanager
async def session(url: str) -> AsyncIterator[ClientSession]:
    async with streamable_http_client(url) as (read, write):
        async with ClientSession(read, write) as s:
            await s.initialize()
            yield s


async def call(s: ClientSession, tool: str, **args: Any) -> tuple[dict, str]:
    r = await s.call_tool(tool, args)
    text = " ".join(getattr(c, "text", "") for c in r.content)
    assert not r.is_error, f"{tool} failed: {text}"
    return r.structured_content, text


def limit_of(containers: list[dict], name: str) -> tuple[str, str]:
    c = next(c for c in containers if c["name"] == name)
    return c["limits"]["memory"], c["requests"]["memory"]


async def test_an_oomkilled_pod_is_remediated_end_to_end_and_the_workflow_survives_a_restart(
    chm_bin, server_logs, tmp_path
):
    db = str(tmp_path / "coordination.db")
    with deadline(90):
        async with http_server(chm_bin, demo_args(db), server_logs) as srv:
            async with session(srv.mcp_url) as s:
                # The OOMKilled pod, and what the catalogue recommends for it.
                pod, _ = await call(s, "get-pod", namespace=NS, name=OOM_POD)
                assert limit_of(pod["containers"], "product-catalog") == ("256Mi", "256Mi")
                recs, _ = await call(s, "get-remediation-recommendations", namespace=NS)
                rec = next(r for r in recs["recommendations"] if r["pod"] == OOM_POD)
                assert (rec["issue"], rec["deployment_method"], rec["workflow"]) == (
                    "OOMKilled", "manual", "oomkilled-raise-memory-limit"
                )
                args = rec["trigger_remediation"]
                assert args["dry_run"] is True
                made, _ = await call(s, "create-incident", title="product-catalog OOMKilled", severity="high",
                                     description="the container is killed at its 256Mi limit", target="shop-frontend/product-catalog",
                                     namespace=NS, affected_resources=[f"Pod/{OOM_POD}"])
                inc = made["incident_id"]

                # Dry run: the plan and each write's patch; nothing changes.
                dry, text = await call(s, "trigger-remediation", **args, incident_id=inc)
                assert (dry["workflow"], dry["deployment_method"], dry["state"], dry["dry_run"]) == (
                    "oomkilled-raise-memory-limit", "manual", "completed", True
                ), dry
                assert dry["workflow_id"].startswith("wf-") and len(dry["workflow_id"]) == 11
                patch = {"spec": {"template": {"spec": {"containers": [
                    {"name": "product-catalog", "resources": {"limits": {"memory": "640Mi"}}}]}}}}
                steps = {x["name"]: x for x in dry["steps"]}
                assert [x["name"] for x in dry["steps"]] == ["detect", "plan", "approve", "apply", "verify"]
                assert steps["plan"]["patch"] == patch and steps["apply"]["patch"] == patch, dry["steps"]
                assert steps["approve"]["status"] == "skipped"
                assert steps["detect"]["note"] == "no ArgoCD, Helm or operator marker on Deployment, ReplicaSet, Pod"
                assert text.startswith("DRY RUN (nothing changes)") and '"memory": "640Mi"' in text, text
                capped, _ = await call(s, "trigger-remediation", **args, arguments={"max_memory": "512Mi"})
                plan = next(x for x in capped["steps"] if x["name"] == "plan")
                assert plan["patch"]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {
                    "memory": "512Mi"
                }, capped
                pod, _ = await call(s, "get-pod", namespace=NS, name=OOM_POD)
                assert limit_of(pod["containers"], "product-catalog") == ("256Mi", "256Mi"), "a dry run changes nothing"

                # For real. A destructive call is confirmed first (this client cannot be asked
                # through elicitation): without `confirm` the answer is the dry run's.
                preview, text = await call(s, "trigger-remediation", **{**args, "dry_run": False}, incident_id=inc)
                assert text.startswith("DRY RUN ONLY: nothing was changed.") and preview["dry_run"] is True, text
                assert preview["state"] == "completed", preview
                # Confirmed, the workflow previews its change, then waits for approval.
                real, text = await call(s, "trigger-remediation", **{**args, "dry_run": False}, incident_id=inc, confirm=True)
                wf = real["workflow_id"]
                assert (real["state"], real["status"]) == ("awaiting_approval", "pending"), real
                assert real["awaiting_approval"] == (
                    "Raise the memory limit of container product-catalog of Deployment "
                    "shop-frontend/product-catalog from 256Mi to 640Mi?"
                ), real
                assert "approve-remediation" in text
                pod, _ = await call(s, "get-pod", namespace=NS, name=OOM_POD)
                assert limit_of(pod["containers"], "product-catalog") == ("256Mi", "256Mi"), "nothing before approval"

                unconfirmed = await s.call_tool("approve-remediation", {"id": wf, "approved_by": "alice"})
                assert unconfirmed.is_error and "Not applied" in unconfirmed.content[0].text
                approved, _ = await call(s, "approve-remediation", id=wf, approved_by="alice", confirm=True)
                assert (approved["state"], approved["approved_by"]) == ("completed", "alice"), approved
                status, text = await call(s, "get-remediation-status", id=wf)
                assert (status["status"], status["incident_id"], status["remediator"]) == (
                    "completed", inc, "oomkilled-raise-memory-limit"
                ), status
                assert [(x["order"], x["name"], x["status"]) for x in status["steps"]] == [
                    (1, "detect", "completed"), (2, "plan", "completed"), (3, "approve", "completed"),
                    (4, "apply", "completed"), (5, "verify", "completed"),
                ], status["steps"]
                assert status["steps"][2]["approved_by"] == "alice"
                assert status["steps"][3]["patch"] == patch

                # The in-memory cluster: the template is patched, the pods rolled out.
                dep, _ = await call(s, "get-resource", api_version="apps/v1", kind="Deployment", namespace=NS,
                                    name="product-catalog", fields=["spec.template.spec.containers"])
                res = dep["object"]["containers"][0]["resources"]
                assert (res["limits"]["memory"], res["requests"]["memory"]) == ("640Mi", "256Mi"), dep
                gone = await s.call_tool("get-pod", {"namespace": NS, "name": OOM_POD})
                assert gone.is_error and "404" in gone.content[0].text, "the OOMKilled pod was replaced"
                pods, _ = await call(s, "list-pods", namespace=NS, label_selector="app=product-catalog")
                assert pods["returned"] == 2, pods
                for p in pods["pods"]:
                    assert p["status"] == "Running", p
                    new, text = await call(s, "get-pod", namespace=NS, name=p["name"])
                    assert limit_of(new["containers"], "product-catalog") == ("640Mi", "256Mi"), new
                    assert "memory=640Mi" in text, text

            # The same workflow over the original engine's REST route.
            async with httpx.AsyncClient(timeout=10) as http:
                r = await http.get(f"{srv.base}/api/v1/workflows/{wf}")
                assert r.status_code == 200, r.text
                body = r.json()
                assert (body["id"], body["status"], body["deployment_method"], body["resource_name"]) == (
                    wf, "completed", "manual", OOM_POD
                ), body
                assert [x["order"] for x in body["steps"]] == [1, 2, 3, 4, 5]
                r = await http.get(f"{srv.base}/api/v1/workflows/wf-00000000")
                assert (r.status_code, r.text) == (404, "Workflow not found")

        # A new process on the same SQLite file: everything is still there.
        async with http_server(chm_bin, demo_args(db), server_logs) as srv:
            async with session(srv.mcp_url) as s:
                status, _ = await call(s, "get-remediation-status", id=wf)
                assert (status["status"], len(status["steps"])) == ("completed", 5), status
                history, _ = await call(s, "list-remediation-history", incident_id=inc)
                assert history["total"] == 3, history  # the dry run, the unconfirmed call's dry run, the real one
                assert {w["id"] for w in history["workflows"]} == {wf, dry["workflow_id"], preview["workflow_id"]}
                assert all(w["resource"] == f"Pod/{OOM_POD}" for w in history["workflows"])
                incident, _ = await call(s, "get-incident", id=inc)
                assert (incident["incident"]["title"], incident["incident"]["status"]) == ("product-catalog OOMKilled", "active"), incident
                assert {w["id"]: w["status"] for w in incident["workflows"]} == {
                    wf: "completed", dry["workflow_id"]: "completed", preview["workflow_id"]: "completed"
                }, incident
                everything, _ = await call(s, "list-remediation-history")
                assert everything["total"] == 4, everything
                res = await s.read_resource("cluster://remediation-history")
                listed = json.loads(res.contents[0].text)
                assert listed["total"] == 4 and wf in {w["id"] for w in listed["workflows"]}, listed
