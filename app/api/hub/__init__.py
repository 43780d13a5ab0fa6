"""JSON routes of the desks at the hub (`/v1/hq/…`, bearer-token hub users), mounted by
`app.hub_app.create_app`. Each module exposes `router(engine, caller, data_key) -> APIRouter`; bodies
are read by pydantic models (`sync.hub.bodies`) and errors answered by `HqCaller`'s one mapping."""
