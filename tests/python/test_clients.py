"""The official Python MCP SDK (PyPI `mcp` 2.x) as a real client against the real binary.

a. stdio, classic initialize handshake: tools/resources/prompts, argument errors
b. the same over Streamable HTTP at /mcp
c. mode="auto" (server/discover) over stdio and HTTP; the newest protocol version is negotiated;
   reload events through subscriptions/listen on a discover-era connection
d. hot reload: a new tool file -> tools/list_changed; a broken file keeps the last good
   registry (stdio: the located error in the log; HTTP: /readyz reloadErrors and /metrics)
e. a ConfigMap-style `..data` symlink swap is picked up (twice, so the watcher survives it)
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp import Client, ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import ToolsListChanged
from mcp.shared.exceptions import MCPError
from mcp_types.version import LATEST_HANDSHAKE_VERSION, LATEST_PROTOCOL_VERSION, MODERN_PROTOCOL_VERSIONS

from conftest import (
    CAPACITY,
    CATALOGUE,
    MODE,
    deadline,
    LogDir,
    Notifications,
    http_server,
    static_spec_args,
    wait_for_log,
)

pytestmark = pytest.mark.anyio

INVALID_PARAMS = -32602

NEW_TOOL = """\
apiVersion: cluster-health-mcp/v1
kind: Tool
metadata: {name: hello-reload}
spec:
  description: Added while the server runs.
  input:
    who: {type: string, default: world}
  output:
    structured:
      greeting: "'hello ' ~ who"
    text: "{{ greeting }}"
"""

# `bogusField` is on line 6, column 3: the error must say broken.yaml:6:3.
BROKEN_TOOL = """\
apiVersion: cluster-health-mcp/v1
kind: Tool
metadata: {name: broken-tool}
spec:
  description: Has a field the schema does not know.
  bogusField: 1
  output:
    text: never served
"""


def texts(result) -> list[str]:  # noqa: ANN001
    return [c.text for c in result.content if c.type == "text"]


def copy_specs(dest: Path) -> Path:
    """A writable spec dir: the fixture catalogue (Mode `conformance`) + capacity-math."""
    dest.mkdir()
    shutil.copy(CATALOGUE, dest / "catalogue.yaml")
    shutil.copy(CAPACITY, dest / "capacity.yaml")
    return dest


def stdio_params(chm_bin: str, spec_args: list[str], *extra: str) -> StdioServerParameters:
    return StdioServerParameters(command=chm_bin, args=[*spec_args, "serve", *extra])


# --------------------------------------------------------------------------- shared checks


async def check_tools(list_tools) -> None:  # noqa: ANN001
    tools = {t.name: t for t in (await list_tools()).tools}
    assert {"test_simple_text", "test_error_handling", "test_image_content", "capacity-math"} <= tools.keys()
    for t in tools.values():
        assert t.description, f"{t.name} has no description"
        assert t.input_schema.get("type") == "object", t.name
        assert t.annotations is not None and t.annotations.read_only_hint is True, t.name
    cm = tools["capacity-math"]
    assert cm.title == "Capacity math"
    assert cm.description.startswith("How many pods of a given CPU request fit")
    props = cm.input_schema["properties"]
    assert props["quota_cpu"]["type"] == "string" and props["quota_cpu"]["default"] == "4"
    assert props["quota_cpu"]["description"] == "CPU quota as a Kubernetes quantity."
    assert props["replicas"]["type"] == "integer" and props["replicas"]["minimum"] == 0
    assert cm.input_schema.get("additionalProperties") is False
    assert cm.output_schema is not None and cm.output_schema.get("type") == "object"
    assert {"max_pods", "free_slots"} <= set(cm.output_schema["properties"])
    assert cm.annotations.destructive_hint is False


async def check_calls(call_tool) -> None:  # noqa: ANN001
    r = await call_tool("capacity-math", {"quota_cpu": "2", "pod_cpu": "250m", "replicas": 3})
    assert r.is_error is False
    assert r.structured_content == {"max_pods": 8, "free_slots": 5}
    assert texts(r) == ["8 pods fit, 5 free"]

    r = await call_tool("capacity-math", {})  # defaults: 4 / 100m
    assert r.structured_content == {"max_pods": 40, "free_slots": 40}

    r = await call_tool("test_simple_text", {})
    assert not r.is_error and texts(r) == ["This is a simple text response for testing."]

    r = await call_tool("test_error_handling", {})
    assert r.is_error is True
    assert texts(r) == ["This tool intentionally returns an error for testing"]

    # Invalid arguments are tool results with isError, naming the offending field.
    for args, needle in [
        ({"quota_cpu": 5}, "quota_cpu"),  # wrong type
        ({"replicas": "3"}, "replicas"),  # wrong type
        ({"replicas": -1}, "replicas"),  # below minimum
        ({"bogus_arg": "x"}, "bogus_arg"),  # unknown argument
    ]:
        r = await call_tool("capacity-math", args)
        assert r.is_error is True, (args, r)
        msg = " ".join(texts(r))
        assert needle in msg and "invalid arguments" in msg, (args, msg)
        assert r.structured_content is None, (args, r.structured_content)

    # An unknown tool is a protocol error (-32602) naming the tool.
    with pytest.raises(MCPError) as ei:
        await call_tool("no-such-tool", {})
    assert ei.value.error.code == INVALID_PARAMS and "no-such-tool" in ei.value.error.message


async def check_resources(session) -> None:  # noqa: ANN001
    uris = {str(r.uri) for r in (await session.list_resources()).resources}
    assert "test://static-text" in uris
    templates = {t.uri_template for t in (await session.list_resource_templates()).resource_templates}
    assert "test://template/{id}/data" in templates

    res = await session.read_resource("test://static-text")
    (c,) = res.contents
    assert str(c.uri) == "test://static-text" and c.mime_type == "text/plain"
    assert c.text == "This is the content of the static text resource."

    res = await session.read_resource("test://template/42/data")
    (c,) = res.contents
    assert c.mime_type == "application/json"
    assert json.loads(c.text) == {"id": "42", "templateTest": True, "data": "Data for ID: 42"}


async def check_prompts(session) -> None:  # noqa: ANN001
    prompts = {p.name: p for p in (await session.list_prompts()).prompts}
    assert {"test_prompt_with_arguments", "investigate-pods"} <= prompts.keys()
    args = {a.name: a.required for a in prompts["investigate-pods"].arguments}
    assert args == {"namespace": True, "pod_name": False}

    p = await session.get_prompt("test_prompt_with_arguments", {"arg1": "alpha-1", "arg2": "beta 2"})
    assert p.messages[0].role == "user"
    assert p.messages[0].content.text == "Prompt with arguments: arg1='alpha-1', arg2='beta 2'"

    p = await session.get_prompt("investigate-pods", {"namespace": "payments", "pod_name": "api-7f9c"})
    assert "Investigate pod api-7f9c in namespace payments." in p.messages[0].content.text
    p = await session.get_prompt("investigate-pods", {"namespace": "payments"})
    assert "Investigate the pods of namespace payments." in p.messages[0].content.text

    for name, given, missing in [
        ("test_prompt_with_arguments", {"arg1": "x"}, "arg2"),
        ("investigate-pods", {"pod_name": "p"}, "namespace"),
    ]:
        with pytest.raises(MCPError) as ei:
            await session.get_prompt(name, given)
        assert ei.value.error.code == INVALID_PARAMS, ei.value.error
        assert missing in ei.value.error.message, ei.value.error.message


async def core_checks(s: ClientSession) -> None:
    await check_tools(s.list_tools)
    await check_calls(s.call_tool)
    await check_resources(s)
    await check_prompts(s)


def check_initialize(init: types.InitializeResult) -> None:
    assert init.protocol_version == LATEST_HANDSHAKE_VERSION
    assert init.server_info.name == "cluster-health-mcp"
    caps = init.capabilities
    assert caps.tools is not None and caps.tools.list_changed is True
    assert caps.prompts is not None and caps.prompts.list_changed is True
    assert caps.resources is not None and caps.resources.list_changed is True


# --------------------------------------------------------------------------- a. stdio


async def test_stdio_classic_handshake(chm_bin: str, server_logs: LogDir) -> None:
    with deadline(), open(server_logs.new("stdio"), "w") as errlog:
        async with stdio_client(stdio_params(chm_bin, static_spec_args(), "--no-reload"), errlog=errlog) as (r, w):
            async with ClientSession(r, w) as s:
                check_initialize(await s.initialize())
                await core_checks(s)


# --------------------------------------------------------------------------- b. HTTP


async def test_http_classic_handshake(chm_bin: str, server_logs: LogDir) -> None:
    with deadline():
        async with http_server(chm_bin, static_spec_args(), server_logs, ["--no-reload"]) as srv:
            async with streamable_http_client(srv.mcp_url) as (r, w):
                async with ClientSession(r, w) as s:
                    check_initialize(await s.initialize())
                    await core_checks(s)
            metrics = (await srv.get("/metrics")).text
            # check_calls made 2 good + 4 invalid-argument calls to capacity-math
            m = re.search(r'^mcp_tool_calls_total\{tool="capacity-math"\} (\d+)', metrics, re.M)
            assert m and int(m.group(1)) >= 6, metrics


# --------------------------------------------------------------------------- c. discover / auto


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_auto_mode_discover(chm_bin: str, server_logs: LogDir, transport: str) -> None:
    with deadline():
        if transport == "http":
            async with http_server(chm_bin, static_spec_args(), server_logs, ["--no-reload"]) as srv:
                await _auto_checks(srv.mcp_url)
        else:
            with open(server_logs.new("stdio-auto"), "w") as errlog:
                await _auto_checks(stdio_client(stdio_params(chm_bin, static_spec_args(), "--no-reload"), errlog=errlog))


async def _auto_checks(target) -> None:  # noqa: ANN001
    async with Client(target, mode="auto") as c:
        # Negotiated through server/discover (not the initialize fallback), at the newest version.
        assert c.protocol_version == LATEST_PROTOCOL_VERSION == MODERN_PROTOCOL_VERSIONS[-1]
        disc = c.session.discover_result
        assert disc is not None, "mode=auto fell back to initialize: server/discover was not answered"
        assert c.session.initialize_result is None
        assert LATEST_PROTOCOL_VERSION in disc.supported_versions
        assert LATEST_HANDSHAKE_VERSION in disc.supported_versions
        assert disc.capabilities.tools is not None
        assert c.server_info is not None and c.server_info.name == "cluster-health-mcp"

        await check_tools(c.list_tools)
        await check_calls(c.call_tool)
        p = await c.get_prompt("test_prompt_with_arguments", {"arg1": "one", "arg2": "two"})
        assert p.messages[0].content.text == "Prompt with arguments: arg1='one', arg2='two'"
        res = await c.read_resource("test://static-text")
        assert res.contents[0].text == "This is the content of the static text resource."


async def test_auto_mode_listen_sees_reload_http(chm_bin: str, server_logs: LogDir, tmp_path: Path) -> None:
    """On a discover-era connection, reloads arrive through subscriptions/listen."""
    specs = copy_specs(tmp_path / "specs")
    with deadline():
        async with http_server(chm_bin, ["--replace-catalogue", "--specs", str(specs), "--mode", MODE], server_logs) as srv:
            async with Client(srv.mcp_url, mode="auto") as c:
                assert c.protocol_version == LATEST_PROTOCOL_VERSION
                assert "hello-reload" not in {t.name for t in (await c.list_tools()).tools}
                async with c.listen(tools_list_changed=True) as sub:
                    assert sub.honored.tools_list_changed is True
                    (specs / "hello.yaml").write_text(NEW_TOOL)
                    event = None
                    with anyio.move_on_after(5):
                        event = await sub.__anext__()
                    assert isinstance(event, ToolsListChanged), f"no ToolsListChanged event within 5 s: {event!r}"
                assert "hello-reload" in {t.name for t in (await c.list_tools()).tools}
                r = await c.call_tool("hello-reload", {"who": "auto"})
                assert r.structured_content == {"greeting": "hello auto"} and texts(r) == ["hello auto"]


# --------------------------------------------------------------------------- d. hot reload


async def test_stdio_reload_add_tool_then_broken_file(chm_bin: str, server_logs: LogDir, tmp_path: Path) -> None:
    specs = copy_specs(tmp_path / "specs")
    log = server_logs.new("stdio-reload")
    notes = Notifications()
    with deadline(), open(log, "w") as errlog:
        params = stdio_params(chm_bin, ["--replace-catalogue", "--specs", str(specs), "--mode", MODE])
        async with stdio_client(params, errlog=errlog) as (r, w):
            async with ClientSession(r, w, message_handler=notes) as s:
                await s.initialize()
                before = {t.name for t in (await s.list_tools()).tools}
                assert "capacity-math" in before and "hello-reload" not in before

                # 1. A new tool file: list_changed within a few seconds, then listed and callable.
                t0 = anyio.current_time()
                (specs / "hello.yaml").write_text(NEW_TOOL)
                await notes.wait_for(types.ToolListChangedNotification, timeout=5)
                print(f"list_changed after {anyio.current_time() - t0:.2f}s; notifications: {notes.names()}")
                after = {t.name for t in (await s.list_tools()).tools}
                assert after == before | {"hello-reload"}
                res = await s.call_tool("hello-reload", {"who": "stdio"})
                assert res.structured_content == {"greeting": "hello stdio"} and texts(res) == ["hello stdio"]

                # 2. A broken file: the located error is logged, the last good registry keeps serving.
                n_changed = notes.count(types.ToolListChangedNotification)
                offset = log.stat().st_size
                (specs / "broken.yaml").write_text(BROKEN_TOOL)
                await wait_for_log(log, r"broken\.yaml:6:3: error: unknown field `bogusField`", after=offset)
                await wait_for_log(log, r"reload failed.*keeping the previous registry", after=offset)
                assert {t.name for t in (await s.list_tools()).tools} == after
                res = await s.call_tool("hello-reload", {})
                assert res.is_error is False and texts(res) == ["hello world"]
                res = await s.call_tool("capacity-math", {"quota_cpu": "1"})
                assert res.structured_content == {"max_pods": 10, "free_slots": 10}
                await anyio.sleep(0.5)  # nothing changed, so nothing should be announced
                assert notes.count(types.ToolListChangedNotification) == n_changed, notes.names()


async def test_http_reload_broken_file_readyz_metrics(chm_bin: str, server_logs: LogDir, tmp_path: Path) -> None:
    specs = copy_specs(tmp_path / "specs")
    notes = Notifications()
    with deadline():
        async with http_server(chm_bin, ["--replace-catalogue", "--specs", str(specs), "--mode", MODE], server_logs) as srv:
            ready = (await srv.get("/readyz")).json()
            assert ready["reloadErrors"] == [] and ready["mode"] == MODE
            async with streamable_http_client(srv.mcp_url) as (r, w):
                async with ClientSession(r, w, message_handler=notes) as s:
                    await s.initialize()
                    # A good change first: list_changed arrives on the standalone GET stream.
                    (specs / "hello.yaml").write_text(NEW_TOOL)
                    await notes.wait_for(types.ToolListChangedNotification, timeout=5)
                    names = {t.name for t in (await s.list_tools()).tools}
                    assert "hello-reload" in names
                    n_changed = notes.count(types.ToolListChangedNotification)

                    (specs / "broken.yaml").write_text(BROKEN_TOOL)
                    with anyio.move_on_after(5):
                        while not (ready := (await srv.get("/readyz")).json())["reloadErrors"]:
                            await anyio.sleep(0.1)
                    errors = ready["reloadErrors"]
                    located = [e for e in errors if re.search(r"broken\.yaml:6:3\b", e)]
                    assert located, f"reloadErrors does not name broken.yaml:6:3: {errors}"
                    assert "bogusField" in located[0]
                    assert ready["tools"] == len(names), ready

                    metrics = (await srv.get("/metrics")).text
                    m = re.search(r'^mcp_spec_reloads_total\{result="error"\} (\d+)', metrics, re.M)
                    assert m and int(m.group(1)) >= 1, metrics
                    m = re.search(r'^mcp_spec_reloads_total\{result="ok"\} (\d+)', metrics, re.M)
                    assert m and int(m.group(1)) >= 1, metrics

                    # Still serving the last good registry.
                    assert {t.name for t in (await s.list_tools()).tools} == names
                    res = await s.call_tool("hello-reload", {"who": "http"})
                    assert texts(res) == ["hello http"]
                    assert notes.count(types.ToolListChangedNotification) == n_changed, notes.names()

                    # Fixing the file clears the errors.
                    (specs / "broken.yaml").unlink()
                    with anyio.move_on_after(5):
                        while (ready := (await srv.get("/readyz")).json())["reloadErrors"]:
                            await anyio.sleep(0.1)
                    assert ready["reloadErrors"] == [], f"errors not cleared after removing broken.yaml: {ready}"


# --------------------------------------------------------------------------- e. ConfigMap swap


def configmap_publish(root: Path, stamp: str, files: dict[str, str]) -> None:
    """What the kubelet's AtomicWriter does: write a new timestamped dir, point a temporary
    symlink at it, rename that over `..data`, remove the old dir; top-level names are
    symlinks `name -> ..data/name`."""
    new = root / f"..{stamp}"
    new.mkdir()
    for name, text in files.items():
        (new / name).write_text(text)
    data = root / "..data"
    old = data.resolve() if data.is_symlink() else None
    tmp = root / "..data_tmp"
    os.symlink(new.name, tmp)
    os.rename(tmp, data)
    for name in files:
        link = root / name
        if not link.is_symlink():
            os.symlink(f"..data/{name}", link)
    if old is not None:
        shutil.rmtree(old)


def cm_tool(version: str) -> str:
    return f"""\
---
apiVersion: cluster-health-mcp/v1
kind: Tool
metadata: {{name: cm-added}}
spec:
  description: Arrived through ConfigMap update {version}.
  output:
    text: configmap {version}
"""


async def test_configmap_symlink_swap(chm_bin: str, server_logs: LogDir, tmp_path: Path) -> None:
    root = tmp_path / "configmap"
    root.mkdir()
    catalogue, capacity = CATALOGUE.read_text(), CAPACITY.read_text()
    configmap_publish(root, "2026_01_01_00_00_00.000000001", {"catalogue.yaml": catalogue, "tools.yaml": capacity})
    assert (root / "tools.yaml").is_symlink() and os.readlink(root / "..data").startswith("..2026_")
    notes = Notifications()
    with deadline(), open(server_logs.new("stdio-configmap"), "w") as errlog:
        params = stdio_params(chm_bin, ["--replace-catalogue", "--specs", str(root), "--mode", MODE])
        async with stdio_client(params, errlog=errlog) as (r, w):
            async with ClientSession(r, w, message_handler=notes) as s:
                await s.initialize()
                names = [t.name for t in (await s.list_tools()).tools]
                assert len(names) == len(set(names)), f"tools listed twice (symlinked paths loaded twice?): {names}"
                assert "capacity-math" in names and "cm-added" not in names

                # The second swap checks the watcher survived the first. Each version changes the
                # tool's description: the server notifies only when what clients list changes.
                for i, version in enumerate(["v2", "v3"]):
                    configmap_publish(
                        root,
                        f"2026_01_01_00_00_0{i + 1}.00000000{i + 2}",
                        {"catalogue.yaml": catalogue, "tools.yaml": capacity + cm_tool(version)},
                    )
                    try:
                        await notes.wait_for(types.ToolListChangedNotification, after=i, timeout=5)
                    except AssertionError as e:
                        raise AssertionError(f"ConfigMap `..data` swap #{i + 1} ({version}) not picked up: {e}") from None
                    now = [t.name for t in (await s.list_tools()).tools]
                    assert now.count("cm-added") == 1 and len(now) == len(set(now)), now
                    res = await s.call_tool("cm-added", {})
                    assert texts(res) == [f"configmap {version}"], (version, texts(res))
