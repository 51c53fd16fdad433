"""HD maps for the `hdmap` control modality: load an OpenDRIVE map once per client.

`hdmap_load` parses the map (CARLA's own OpenDRIVE parser, no server needed; the `carla`
extra) and compiles it for rendering; `controls` with modality hdmap then draws it per
tick from the camera's K and pose, plus the tick's boxes and traffic-light states.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from cosmos_sim.sidecar.methods.episodes import episode_path
from cosmos_sim.sidecar.protocol import ErrorCode, ProtocolError
from cosmos_sim.sidecar.schema import Call, Method, Param, Result

KIND = "hdmap"


def hdmap_load(call: Call) -> Result:
    from cosmos_sim.bridges.opendrive import OpenDriveError, compile_map
    from cosmos_sim.controls.hdmap import compile_scene

    p = call.params
    if (p["path"] is None) == (p["xodr"] is None):
        raise ProtocolError(
            ErrorCode.BAD_PARAMS,
            "give exactly one of path and xodr",
            "params.path",
            "pass path (an .xodr file under the server's "
            "data_dir) or xodr (the OpenDRIVE text itself)",
        )
    try:
        if p["path"] is not None:
            path = episode_path(call.server.data_dir, p["path"])
            compiled = compile_map(path, step_m=p["step_m"])
        else:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "map.xodr"
                path.write_text(p["xodr"])
                compiled = compile_map(path, step_m=p["step_m"])
    except OpenDriveError as exc:
        field = "params.path" if p["path"] is not None else "params.xodr"
        raise ProtocolError(
            ErrorCode.BAD_PARAMS, str(exc), field, "pass a valid OpenDRIVE map with driving lanes"
        ) from None
    scene = compile_scene(compiled.geometry, version=p["version"])
    handle = call.session.add(KIND, scene, lambda: None)
    return {
        "hdmap": handle,
        "version": scene.version,
        "segments": int(len(scene.seg_a)),
        "traffic_lights": [light for light in scene.cuboid_light if light is not None],
    }, {}


METHODS = [
    Method(
        "hdmap_load",
        hdmap_load,
        "Load an OpenDRIVE map for the hdmap control modality; returns its handle.",
        params={
            "path": Param((str, type(None)), None, doc=".xodr file relative to data_dir"),
            "xodr": Param((str, type(None)), None, doc="OpenDRIVE XML text"),
            "version": Param(
                str,
                "v3",
                choices=("v3", "v1"),
                doc="Cosmos colour table: v3 (Transfer 2.5) or v1 (Transfer 1)",
            ),
            "step_m": Param(float, 1.0, doc="waypoint spacing along lanes, metres"),
        },
        stateful=True,
    ),
]
