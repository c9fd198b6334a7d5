"""The recommendation service (FastAPI): a live session's clicks in, the top-k products out.

    GET    /                           the demo page (static/demo.html: plain HTML and JavaScript, nothing fetched from
                                        elsewhere)
    GET    /health                     liveness, model name, live sessions
    GET    /metadata                   model, its params, data and model hashes (dvc.lock), catalogue size, test metrics
    POST   /recommend                  {"events": [{"product_id", "event_time"?, "category"?}, ...], "k"?,
                                        "exclude_seen"?, "explain"?}
    POST   /sessions/{id}/events       one click ({"product_id", "event_time"?, "user_id"?, "k"?, ...}) -> fresh top-k
    GET    /sessions/{id}              the session's clicks
    DELETE /sessions/{id}
    GET    /categories                 the catalogue's top-level categories, most clicked first
    GET    /products?category=&limit=  a category's most clicked products (what the demo page offers to click)

Every request is validated: a malformed body, a wrong type, ``k`` or the session outside the ``serve.*`` bounds, an
unknown session or an oversized body get a 4xx whose message names the field; never a 500. The answer for the n-th
click of a live session equals ``/recommend`` on the same n clicks (both call ``Recommender.recommend``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import datetime, timezone
from pathlib import Path

import yaml
from fastapi import FastAPI, HTTPException, Path as PathParam, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from sessionrec import paths
from sessionrec.params import ServeParams, load_params
from sessionrec.serving.recommender import Click, Recommender
from sessionrec.serving.sessions import SessionFull, SessionStore

DEMO_PAGE = Path(__file__).parent / "static" / "demo.html"
SESSION_ID = PathParam(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")
LATEST = 4102444800.0  # 2100-01-01 UTC: a click time must be before it (a time in milliseconds is far past it)


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product_id: StrictInt = Field(ge=0, description="the shop's product id")
    event_time: datetime | float | None = Field(None, description="ISO 8601 or unix seconds; default: now")
    category: str | None = Field(None, max_length=200, description="for a product the catalogue lacks")

    @field_validator("event_time")
    @classmethod
    def _between_1970_and_2100(cls, v):
        """A time without a zone is UTC (as ``filter_encode`` reads one); NaN, infinity, a negative number or one in
        milliseconds is refused with a message, not turned into a time the models cannot use."""
        if isinstance(v, datetime) and v.tzinfo is None:
            v = v.replace(tzinfo=timezone.utc)
        t = v.timestamp() if isinstance(v, datetime) else v
        if t is not None and not 0 <= t < LATEST:  # NaN fails the comparison too
            hint = "; in milliseconds?" if LATEST <= t < 1000 * LATEST else ""
            raise ValueError(f"{str(v)} is not a time between 1970 and 2100 (unix seconds or ISO 8601){hint}")
        return v

    def click(self) -> Click:
        t = self.event_time.timestamp() if isinstance(self.event_time, datetime) else self.event_time
        return Click(self.product_id, t, self.category)


class AnswerOptions(BaseModel):
    """What both request kinds may ask of the answer."""
    model_config = ConfigDict(extra="forbid")
    k: StrictInt = 20
    exclude_seen: bool = True
    explain: bool = False
    user_id: StrictInt | None = Field(None, description="a returning visitor: their history answers an empty session")


class RecommendRequest(AnswerOptions):
    events: list[Event]


class SessionEvent(Event, AnswerOptions):
    """One live click and the options of its answer."""


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413, by its Content-Length or as it streams in."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await self._reject(send)
        seen, too_big, started = 0, False, False

        async def limited():
            nonlocal seen, too_big
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:  # a body streamed without Content-Length: stop reading it
                too_big = True
                return {"type": "http.disconnect"}
            return message

        async def tracked(message):
            nonlocal started
            if too_big:
                return  # the app's answer to a cut-off body is replaced by the 413 below
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, tracked)
        except Exception:
            if not too_big:
                raise
        if too_big and not started:
            await self._reject(send)

    async def _reject(self, send):
        body = json.dumps({"detail": f"request body over {self.limit} bytes (serve.max_body_bytes)"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def metadata(root: Path, recommender: Recommender, model_params: dict) -> dict:
    """What was trained on what: the model and its params, the hashes DVC recorded, the test metrics."""
    lock = yaml.safe_load((root / "dvc.lock").read_text()) if (root / "dvc.lock").exists() else {}
    stages = lock.get("stages", {})

    def md5(stage: str, path: str):
        return next((o.get("md5") for o in stages.get(stage, {}).get("outs", []) if o["path"] == path), None)

    test = root / paths.TEST_METRICS
    return {"model": recommender.name, "params": model_params, "catalogue_items": recommender.n_items - 1,
            "hashes": {"models/model.pt": md5("train", "models/model.pt"),
                       "data/split": md5("split", "data/split"), "data/graphs": md5("build_graphs", "data/graphs")},
            "test_metrics": json.loads(test.read_text()) if test.exists() else None}


def finite(value):
    """``value`` (JSON-like) with every NaN or infinite float replaced by its text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def create_app(recommender: Recommender, serve: ServeParams, meta: dict | None = None) -> FastAPI:
    app = FastAPI(title="sessionrec", description="session-based next-product recommendations")
    sessions = SessionStore(serve.max_sessions, serve.session_ttl_seconds, serve.max_events)
    app.state.sessions = sessions

    def check(n_events: int, k: int, field: str = "k") -> None:
        if not 1 <= k <= serve.max_k:
            raise HTTPException(422, f"{field}: {k} is out of range; allowed [1, {serve.max_k}] (serve.max_k)")
        if n_events > serve.max_events:
            raise HTTPException(422, f"events: {n_events} clicks, at most {serve.max_events} (serve.max_events)")

    demo = DEMO_PAGE.read_text(encoding="utf-8")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's 422, with a NaN or an infinity the body held (Python's JSON reads ``NaN``) echoed as text: JSON
        has no such number, so the default answer failed to render and the client got a 500."""
        return JSONResponse(status_code=422, content={"detail": finite(jsonable_encoder(exc.errors()))})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def demo_page() -> str:
        return demo

    @app.get("/categories")
    def categories() -> list[dict]:
        return recommender.categories()

    @app.get("/products")
    def products(category: str | None = Query(None, max_length=200), limit: int = 24) -> list[dict]:
        check(0, limit, "limit")
        found = recommender.products(category, limit)
        if found is None:
            raise HTTPException(404, f"category: no products in category {category!r} (see GET /categories)")
        return found

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": recommender.name, "live_sessions": len(sessions)}

    @app.get("/metadata")
    def get_metadata() -> dict:
        return meta or {"model": recommender.name, "catalogue_items": recommender.n_items - 1}

    @app.post("/recommend")
    def recommend(req: RecommendRequest) -> dict:
        check(len(req.events), req.k)
        return recommender.recommend([e.click() for e in req.events], req.k, req.exclude_seen, req.explain,
                                     req.user_id)

    @app.post("/sessions/{session_id}/events")
    def add_event(event: SessionEvent, session_id: str = SESSION_ID) -> dict:
        check(0, event.k)
        try:
            live = sessions.append(session_id, event.click(), event.user_id)
        except SessionFull as e:
            raise HTTPException(422, f"events: {e}") from None
        return {"session_id": session_id, "clicks": len(live.clicks),
                **recommender.recommend(live.clicks, event.k, event.exclude_seen, event.explain, live.user_id)}

    @app.get("/sessions/{session_id}")
    def get_session(session_id: str = SESSION_ID) -> dict:
        s = sessions.get(session_id)
        if s is None:
            raise HTTPException(404, f"session_id: no live session {session_id!r} (unknown or expired)")
        return {"session_id": session_id, "user_id": s.user_id,
                "events": [{"product_id": c.product_id, "event_time": c.event_time} for c in s.clicks]}

    @app.delete("/sessions/{session_id}", status_code=204)
    def delete_session(session_id: str = SESSION_ID) -> Response:
        if not sessions.delete(session_id):
            raise HTTPException(404, f"session_id: no live session {session_id!r} (unknown or expired)")
        return Response(status_code=204)

    return BodyLimit(app, serve.max_body_bytes)


def from_pipeline():
    """The app on what the pipeline made in the working folder (``params.yaml``, ``models/model.pt``, ``data/``);
    uvicorn calls it once per worker (``factory=True``)."""
    params = load_params(paths.PARAMS)
    rec = Recommender.from_pipeline(visitor_history=params.serve.visitor_history)
    return create_app(rec, params.serve, metadata(Path("."), rec, dataclasses.asdict(params.model)))
