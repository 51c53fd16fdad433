"""Record a short PyBullet run, make its controls, and save it all as a rerun recording.

pip install -e ".[view]" && python examples/view_run.py && rerun runs/view/run.rrd
"""

from pathlib import Path

from cosmos_sim.bridges.pybullet import make_scene, record_episode
from cosmos_sim.controls.clips import write_clips
from cosmos_sim.view import find_run, view_run

out = Path("runs/view")
scene = make_scene("street", width=640, height=352)
episode = record_episode(scene, seconds=1.0, out=out / "episode")
write_clips(episode, out / "clips")
print(view_run(find_run(episode, clips=out / "clips"), save=out / "run.rrd"))
