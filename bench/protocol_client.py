"""A Streamlit session without a browser: the app's own websocket protocol, spoken from Python.

The browser load test runs K headless-Chromium pages on the same 2 cores as the server, and the
pages' rendering then takes most of the CPU (bench/RESULTS.md, "Load test without a browser").
This client sends what the frontend sends — ``BackMsg.rerun_script`` with the page, the URL's
query string and the widget states a person's clicks produce — and reads the server's
``ForwardMsg`` stream until the script run ends, so a load test measures the server alone,
as users' browsers on their own machines would see it.

Widget ids come from the elements the server sends (buttons, text areas), never hard-coded;
widgets a rerun does not mention keep their values (Streamlit keeps the last state server-side).

Uploads go the way the frontend's ``st.file_uploader`` sends them: a ``BackMsg.file_urls_request``
naming the files, the server's ``ForwardMsg.file_urls_response`` with one upload URL per file
(``/_stcore/upload_file/<session>/<file id>``), one multipart ``PUT`` per file, then a rerun whose
widget state lists the uploaded files (:func:`uploaded`).
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
import uuid
from dataclasses import dataclass, field

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.Common_pb2 import FileUploaderState, UploadedFileInfo
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

RERUN_TIMEOUT_S = 180.0


@dataclass
class Element:
    """What a load test needs of one element the script sent."""

    kind: str
    """The ``Element`` oneof name: ``button``, ``text_area``, ``markdown``, ``metric``, ``exception``…"""
    label: str = ""
    widget_id: str = ""
    text: str = ""
    """Markdown body, metric value, alert or exception message."""


@dataclass
class ScriptRun:
    """The elements of one script run, in arrival order, and how it ended."""

    elements: list[Element] = field(default_factory=list)
    status: str = ""
    seconds: float = 0.0

    def widget(self, kind: str, label_contains: str) -> Element:
        """The first ``kind`` widget whose label contains ``label_contains`` (KeyError if none)."""
        for element in self.elements:
            if element.kind == kind and element.widget_id and label_contains in element.label:
                return element
        raise KeyError(f"no {kind} labelled like {label_contains!r}; "
                       f"have {[(e.kind, e.label[:30]) for e in self.elements if e.widget_id]}")

    def text(self) -> str:
        return "\n".join(e.text for e in self.elements if e.text)

    def errors(self) -> list[str]:
        """Exceptions and error alerts the page showed (a failed request)."""
        return [e.text for e in self.elements if e.kind in ("exception", "alert:ERROR")]


def _element(delta_element) -> Element | None:
    kind = delta_element.WhichOneof("type")
    if kind is None:
        return None
    proto = getattr(delta_element, kind)
    if kind == "alert":
        return Element(f"alert:{proto.Format.Name(proto.format)}", text=proto.body)
    if kind == "exception":
        return Element(kind, text=f"{proto.type}: {proto.message}")
    text = getattr(proto, "body", "") if kind == "markdown" else ""
    if kind == "code":
        text = proto.code_text
    if kind == "metric":
        text = f"{proto.label} {proto.body}"
    return Element(kind, label=getattr(proto, "label", "") or "", widget_id=getattr(proto, "id", "") or "",
                   text=text)


class ProtocolSession:
    """One Streamlit session over ``/_stcore/stream``; use as ``async with ProtocolSession(url)``."""

    def __init__(self, url: str, query_string: str = "", headers: dict[str, str] | None = None) -> None:
        """``headers``: sent with the websocket's opening request (e.g. the ``X-Forwarded-For`` a proxy adds)."""
        self.http_url = url.rstrip("/")
        self.ws_url = url.replace("http://", "ws://").replace("https://", "wss://") + "/_stcore/stream"
        self.query_string = query_string
        self.headers = dict(headers or {})
        self.pages: dict[str, str] = {}
        """Page name (``Inference``…) → page script hash, from the server's navigation message."""
        self.page_hash = ""
        self._ws = None

    async def __aenter__(self) -> ProtocolSession:
        self._ws = await websockets.connect(self.ws_url, subprotocols=["streamlit"], max_size=None,
                                            open_timeout=RERUN_TIMEOUT_S, additional_headers=self.headers)
        return self

    async def __aexit__(self, *exc) -> None:
        if self._ws is not None:
            await self._ws.close()

    async def open(self, page: str | None = None) -> ScriptRun:
        """Run the app's main page (learning the page list), then ``page`` if given."""
        run = await self.rerun()
        if page is not None:
            if page not in self.pages:
                raise KeyError(f"no page {page!r}; the app has {sorted(self.pages)}")
            self.page_hash = self.pages[page]
            run = await self.rerun()
        return run

    async def upload(self, files: list[tuple[str, bytes]]) -> list[UploadedFileInfo]:
        """Upload ``(name, data)`` files as the file uploader does; their infos go into :func:`uploaded`.

        Call between reruns (no script running): the server's answer is read from the same stream.
        """
        message = BackMsg()
        message.file_urls_request.request_id = uuid.uuid4().hex
        message.file_urls_request.file_names.extend(name for name, _ in files)
        await self._ws.send(message.SerializeToString())
        while True:
            forward = ForwardMsg()
            forward.ParseFromString(await asyncio.wait_for(self._ws.recv(), RERUN_TIMEOUT_S))
            if (forward.WhichOneof("type") == "file_urls_response"
                    and forward.file_urls_response.response_id == message.file_urls_request.request_id):
                break
        response = forward.file_urls_response
        if response.error_msg:
            raise RuntimeError(f"upload refused: {response.error_msg}")
        infos = []
        for (name, data), urls in zip(files, response.file_urls, strict=True):
            await asyncio.to_thread(_put_file, self.http_url + urls.upload_url, name, data, self.headers)
            info = UploadedFileInfo(file_id=urls.file_id, name=name, size=len(data))
            info.file_urls.CopyFrom(urls)
            infos.append(info)
        return infos

    async def rerun(self, *widgets: WidgetState) -> ScriptRun:
        """Send one rerun with ``widgets`` (what a click or a committed edit sends) and wait for its end."""
        message = BackMsg()
        message.rerun_script.query_string = self.query_string
        message.rerun_script.page_script_hash = self.page_hash
        message.rerun_script.widget_states.widgets.extend(widgets)
        started = time.perf_counter()
        await self._ws.send(message.SerializeToString())
        run = ScriptRun()
        while True:
            forward = ForwardMsg()
            forward.ParseFromString(await asyncio.wait_for(self._ws.recv(), RERUN_TIMEOUT_S))
            kind = forward.WhichOneof("type")
            if kind == "navigation":
                self.pages = {p.page_name: p.page_script_hash for p in forward.navigation.app_pages}
            elif kind == "delta" and forward.delta.WhichOneof("type") == "new_element":
                element = _element(forward.delta.new_element)
                if element is not None:
                    run.elements.append(element)
            elif kind == "script_finished":
                status = ForwardMsg.ScriptFinishedStatus.Name(forward.script_finished)
                if status != "FINISHED_EARLY_FOR_RERUN":  # st.rerun(): the next run follows
                    run.status, run.seconds = status, time.perf_counter() - started
                    return run
                run = ScriptRun()


def click(element: Element) -> WidgetState:
    """The widget state a button click sends."""
    return WidgetState(id=element.widget_id, trigger_value=True)


def typed(element: Element, text: str) -> WidgetState:
    """The widget state a committed text input / text area sends."""
    return WidgetState(id=element.widget_id, string_value=text)


def uploaded(element: Element, files: list[UploadedFileInfo]) -> WidgetState:
    """The widget state a file uploader sends once ``files`` are uploaded (empty list: cleared)."""
    state = WidgetState(id=element.widget_id)
    state.file_uploader_state_value.CopyFrom(FileUploaderState(uploaded_file_info=files))
    return state


def chose(element: Element, option: str) -> WidgetState:
    """The widget state a radio sends for ``option`` (its label as shown)."""
    return WidgetState(id=element.widget_id, string_value=option)


def segment(element: Element, *options: str) -> WidgetState:
    """The widget state a segmented control / pills sends for the selected ``options``."""
    state = WidgetState(id=element.widget_id)
    state.string_array_value.data.extend(options)
    return state


def _put_file(url: str, name: str, data: bytes, headers: dict[str, str]) -> None:
    """One multipart ``PUT`` of one file, as the browser's upload does (raises on an HTTP error)."""
    boundary = uuid.uuid4().hex
    safe_name = name.replace('"', "_")
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{safe_name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url, data=body, method="PUT", headers={
        **headers, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=RERUN_TIMEOUT_S) as response:
        if response.status not in (200, 204):
            raise RuntimeError(f"upload of {name}: HTTP {response.status}")
