"""Stand-in for cosmos-predict2.5's `examples/action_conditioned.py` (tests only).

Copied into a fake checkout as `examples/action_conditioned.py`. It reads the `-i` params
file and the annotations the way the real tool's default action loader does (relative
end-effector motion in the previous frame, Z·Y·X Euler angles, motion × action_scaler,
gripper × gripper_scale), refuses unknown params keys (the real parser forbids extras),
appends what it received to $STANDIN_LOG, and writes `<name>_single_chunk.mp4`: the
conditioning frame (resized to `resolution`) then 12 frames brightened by k × the first
scaled Δx, so tests can tell lanes and chunk order apart.
"""

import argparse
import json
import math
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from cosmos_sim.video import read_video, write_video

KNOWN = {
    "name",
    "prompt",
    "negative_prompt",
    "seed",
    "guidance",
    "input_root",
    "input_json_sub_folder",
    "save_root",
    "chunk_size",
    "resolution",
    "camera_id",
    "start",
    "end",
    "fps_downsample_ratio",
    "gripper_scale",
    "gripper_key",
    "state_key",
    "reverse",
    "single_chunk",
    "start_frame_idx",
    "save_fps",
    "num_latent_conditional_frames",
    "action_scaler",
    "use_quat",
    "action_load_fn",
}


def zyx(rpy):
    (cr, sr), (cp, sp), (cy, sy) = ((math.cos(a), math.sin(a)) for a in rpy)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def euler(rot):
    sy = math.hypot(rot[0, 0], rot[1, 0])
    return np.array(
        [
            math.atan2(rot[2, 1], rot[2, 2]),
            math.atan2(-rot[2, 0], sy),
            math.atan2(rot[1, 0], rot[0, 0]),
        ]
    )


def relative_actions(states, gripper, scaler, gripper_scale):
    out = []
    for k in range(1, len(states)):
        prev = zyx(states[k - 1][3:6])
        rel_xyz = prev.T @ (np.asarray(states[k][:3]) - states[k - 1][:3])
        rel_rpy = euler(prev.T @ zyx(states[k][3:6]))
        out.append([*(rel_xyz * scaler), *(rel_rpy * scaler), gripper[k] * gripper_scale])
    return np.asarray(out)


def main():
    if not os.environ.get("HF_HOME"):
        print("Error: The environment variable HF_HOME is not set.")
        sys.exit(1)
    if os.environ.get("STANDIN_FAIL"):
        print("CUDA out of memory (stand-in failure)")
        sys.exit(3)
    parser = argparse.ArgumentParser()
    parser.add_argument("-i", required=True)
    parser.add_argument("-o", required=True)
    parser.add_argument("--experiment")
    args = parser.parse_args()
    params = json.loads(Path(args.i).read_text())
    unknown = sorted(set(params) - KNOWN)
    if unknown:
        print(f"unknown inference parameters {unknown}")
        sys.exit(2)
    root = Path(params["input_root"])
    files = sorted((root / params["input_json_sub_folder"]).glob("*.json"))
    files = files[params["start"] : params["end"]]
    save_root = Path(params["save_root"])
    save_root.mkdir(parents=True, exist_ok=True)
    received = []
    for path in files:
        note = json.loads(path.read_text())
        video, _ = read_video(root / note["videos"][params["camera_id"]]["video_path"])
        frame = video[params["start_frame_idx"]]
        if params["resolution"] != "none":
            h, w = map(int, params["resolution"].split(","))
            frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
        actions = relative_actions(
            np.asarray(note["state"]),
            np.asarray(note[params["gripper_key"]]),
            params["action_scaler"],
            params["gripper_scale"],
        )
        chunk = actions[: params["chunk_size"]]
        step = float(chunk[0, 0])
        frames = [frame] + [
            np.clip(frame.astype(np.float64) + k * step, 0, 255).astype(np.uint8)
            for k in range(1, len(chunk) + 1)
        ]
        name = f"{path.stem}_single_chunk.mp4" if params["single_chunk"] else f"{path.stem}.mp4"
        write_video(save_root / name, np.stack(frames), fps=params["save_fps"], lossless=True)
        received.append(
            {
                "name": path.stem,
                "actions": chunk.tolist(),
                "chunk_size": params["chunk_size"],
                "argv": sys.argv[1:],
            }
        )
    log = Path(os.environ["STANDIN_LOG"])
    runs = json.loads(log.read_text()) if log.is_file() else []
    log.write_text(json.dumps(runs + [received]))


if __name__ == "__main__":
    main()
