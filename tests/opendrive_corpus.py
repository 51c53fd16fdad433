"""Small OpenDRIVE maps written for the HD-map tests: the awkward geometry real maps have.

Each map is a few roads long and built from the same few pieces (straight lines and arcs,
lane widths as cubic polynomials, links by road id), so a test can name what it exercises:
a lane narrowing to zero (merge), one growing from zero (split), a lane of zero width, a
dead end, a hill with superelevation, a ring of arcs joined end to end (roundabout), and a
straight road split into two joined roads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

WHITE_BROKEN = ("broken", "white")
WHITE_SOLID = ("solid", "white")
YELLOW_SOLID = ("solid", "yellow")


@dataclass
class Lane:
    id: int
    width: tuple[float, float, float, float] = (3.5, 0.0, 0.0, 0.0)
    """OpenDRIVE width polynomial a, b, c, d in ds from the section start."""
    mark: tuple[str, str] = WHITE_BROKEN
    type: str = "driving"


@dataclass
class Section:
    s: float
    left: list[Lane] = field(default_factory=list)
    right: list[Lane] = field(default_factory=list)
    centre_mark: tuple[str, str] = YELLOW_SOLID


@dataclass
class Road:
    id: int
    length: float
    x: float = 0.0
    y: float = 0.0
    hdg: float = 0.0
    curvature: float = 0.0
    sections: list[Section] = field(default_factory=list)
    predecessor: int | None = None
    successor: int | None = None
    elevation: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    superelevation: float = 0.0
    signals: str = ""

    def end(self) -> tuple[float, float, float]:
        """(x, y, heading) at s = length."""
        if abs(self.curvature) < 1e-12:
            return (
                self.x + self.length * math.cos(self.hdg),
                self.y + self.length * math.sin(self.hdg),
                self.hdg,
            )
        r = 1.0 / self.curvature
        hdg = self.hdg + self.length * self.curvature
        return (
            self.x + r * (math.sin(hdg) - math.sin(self.hdg)),
            self.y - r * (math.cos(hdg) - math.cos(self.hdg)),
            hdg,
        )


def _lane(lane: Lane) -> str:
    a, b, c, d = lane.width
    kind, color = lane.mark
    return (
        f'<lane id="{lane.id}" type="{lane.type}" level="false"><link/>'
        f'<width sOffset="0" a="{a}" b="{b}" c="{c}" d="{d}"/>'
        f'<roadMark sOffset="0" type="{kind}" color="{color}" width="0.15"/></lane>'
    )


def _road(road: Road) -> str:
    link = ""
    if road.predecessor is not None:
        link += (
            f'<predecessor elementType="road" elementId="{road.predecessor}" contactPoint="end"/>'
        )
    if road.successor is not None:
        link += f'<successor elementType="road" elementId="{road.successor}" contactPoint="start"/>'
    shape = "<line/>" if road.curvature == 0 else f'<arc curvature="{road.curvature}"/>'
    a, b, c, d = road.elevation
    sections = []
    for sec in road.sections:
        left = "".join(_lane(x) for x in sorted(sec.left, key=lambda x: -x.id))
        right = "".join(_lane(x) for x in sorted(sec.right, key=lambda x: -x.id))
        kind, color = sec.centre_mark
        sections.append(
            f'<laneSection s="{sec.s}">'
            + (f"<left>{left}</left>" if left else "")
            + '<center><lane id="0" type="none" level="false"><link/>'
            f'<roadMark sOffset="0" type="{kind}" color="{color}" width="0.15"/></lane></center>'
            + (f"<right>{right}</right>" if right else "")
            + "</laneSection>"
        )
    return (
        f'<road name="r{road.id}" length="{road.length}" id="{road.id}" junction="-1">'
        f"<link>{link}</link><planView>"
        f'<geometry s="0" x="{road.x}" y="{road.y}" hdg="{road.hdg}" length="{road.length}">'
        f"{shape}</geometry></planView>"
        f'<elevationProfile><elevation s="0" a="{a}" b="{b}" c="{c}" d="{d}"/></elevationProfile>'
        f'<lateralProfile><superelevation s="0" a="{road.superelevation}" b="0" c="0" d="0"/>'
        f"</lateralProfile><lanes>{''.join(sections)}</lanes>"
        f"<signals>{road.signals}</signals></road>"
    )


def opendrive(name: str, roads: list[Road]) -> str:
    """The XML text of a map made of `roads`."""
    return (
        '<?xml version="1.0" standalone="yes"?>\n<OpenDRIVE>'
        f'<header revMajor="1" revMinor="4" name="{name}" version="1.00" north="0" south="0" '
        f'east="0" west="0"/>{"".join(_road(r) for r in roads)}</OpenDRIVE>'
    )


def _two_way(s: float = 0.0, right: list[Lane] | None = None) -> Section:
    return Section(
        s,
        left=[Lane(1, mark=WHITE_SOLID)],
        right=right or [Lane(-1, mark=WHITE_SOLID)],
    )


def merge() -> str:
    """Lane -2 narrows from 3.5 m to zero over 40 m, then the road goes on with one lane."""
    taper = (3.5, -3.5 / 40.0, 0.0, 0.0)
    road = Road(1, 120.0, sections=[
        _two_way(0.0, [Lane(-1), Lane(-2, mark=WHITE_SOLID)]),
        _two_way(40.0, [Lane(-1), Lane(-2, taper, WHITE_SOLID)]),
        _two_way(80.0),
    ])  # fmt: skip
    return opendrive("merge", [road])


def split() -> str:
    """Lane -2 grows from zero to 3.5 m (a 2+1 road gaining its passing lane)."""
    grow = (0.0, 3.5 / 40.0, 0.0, 0.0)
    road = Road(1, 120.0, sections=[
        _two_way(0.0),
        _two_way(40.0, [Lane(-1), Lane(-2, grow, WHITE_SOLID)]),
        _two_way(80.0, [Lane(-1), Lane(-2, mark=WHITE_SOLID)]),
    ])  # fmt: skip
    return opendrive("split", [road])


def zero_width() -> str:
    """A driving lane of zero width the whole way along."""
    road = Road(1, 60.0, sections=[
        _two_way(0.0, [Lane(-1), Lane(-2, (0.0, 0.0, 0.0, 0.0), WHITE_SOLID)]),
    ])  # fmt: skip
    return opendrive("zero_width", [road])


def dead_end() -> str:
    """A 30 m one-lane-each-way road that ends: no successor, nothing to turn into."""
    return opendrive("dead_end", [Road(1, 30.0, sections=[_two_way()])])


def one_way_dead_end() -> str:
    """A 30 m one-way road with a single lane: no way on and no lane to turn back into."""
    section = Section(0.0, right=[Lane(-1, mark=WHITE_SOLID)])
    return opendrive("one_way_dead_end", [Road(1, 30.0, sections=[section])])


def hill() -> str:
    """A 150 m road climbing 6 m with a 4 % superelevation."""
    climb = (0.0, 0.0, 3 * 6.0 / 150.0**2, -2 * 6.0 / 150.0**3)
    return opendrive(
        "hill", [Road(1, 150.0, sections=[_two_way()], elevation=climb, superelevation=0.04)]
    )


def roundabout(radius_m: float = 25.0) -> str:
    """A ring of four 90° arcs, each the next one's predecessor (one-way, two lanes)."""
    roads = []
    x, y, hdg = radius_m, 0.0, math.pi / 2
    quarter = math.pi / 2 * radius_m
    for i in range(4):
        lanes = [Lane(-1), Lane(-2, mark=WHITE_SOLID)]
        road = Road(
            i + 1, quarter, x, y, hdg, 1.0 / radius_m, [Section(0.0, right=lanes)],
            predecessor=(i - 1) % 4 + 1, successor=(i + 1) % 4 + 1,
        )  # fmt: skip
        roads.append(road)
        x, y, hdg = road.end()
    return opendrive("roundabout", roads)


def joined() -> str:
    """A straight 100 m street made of two 50 m roads joined end to end at x = 50."""
    first = Road(1, 50.0, sections=[_two_way()], successor=2)
    second = Road(2, 50.0, x=50.0, sections=[_two_way()], predecessor=1)
    return opendrive("joined", [first, second])


def _signal(id_, s, t, type_, orientation="+", dynamic="no", z=0.0, height=0.0, width=0.0,
            country="OpenDRIVE", validity=""):  # fmt: skip
    return (
        f'<signal s="{s}" t="{t}" id="{id_}" name="s{id_}" dynamic="{dynamic}" '
        f'orientation="{orientation}" zOffset="{z}" country="{country}" type="{type_}" '
        f'subtype="-1" value="-1" height="{height}" width="{width}" hOffset="0">{validity}'
        "</signal>"
    )


def signals() -> str:
    """A 120 m two-way road with an intersection's furniture, each placed to catch a mistake:
    a stop line for the lanes with positive ids (orientation "-") standing on the other side
    (t = -3.5); a crosswalk road marking (type 1000003); a vehicle light whose box spans the
    whole 3.2 m assembly from the ground; a pedestrian light at 2.5 m; a sign; and a dynamic
    signal of a type nobody knows."""
    furniture = "".join([
        _signal(31, 60.0, -3.5, "294", orientation="-", width=3.5, country="DE"),
        _signal(32, 70.0, 0.0, "1000003", width=7.0),
        _signal(33, 58.0, -5.0, "1000001", dynamic="yes", z=0.0, height=3.2, width=0.4),
        _signal(34, 72.0, 5.0, "1000002", dynamic="yes", z=2.5, height=0.6, width=0.4),
        _signal(35, 40.0, -5.0, "206", z=2.0, height=0.8, width=0.8, country="DE"),
        _signal(36, 50.0, -5.0, "424242", dynamic="yes", z=1.0, height=0.5, width=0.5),
    ])  # fmt: skip
    road = Road(1, 120.0, sections=[_two_way()], signals=furniture)
    return opendrive("signals", [road])


GENERATED = {
    "merge": merge,
    "split": split,
    "zero_width": zero_width,
    "dead_end": dead_end,
    "one_way_dead_end": one_way_dead_end,
    "hill": hill,
    "roundabout": roundabout,
    "joined": joined,
    "signals": signals,
}


def write_all(folder: Path) -> dict[str, Path]:
    """Every generated map as `<name>.xodr` in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, build in GENERATED.items():
        paths[name] = folder / f"{name}.xodr"
        paths[name].write_text(build())
    return paths
