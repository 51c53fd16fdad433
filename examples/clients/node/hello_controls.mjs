// A cosmos-sim sidecar client written from PROTOCOL.md alone: hello, then controls on one
// synthetic frame. Usage: node hello_controls.mjs [ADDRESS] [WIDTH] [HEIGHT]
// Prints one JSON line: the negotiated version and, per control, its shape and SHA-256.
import { createHash } from "node:crypto";
import { decode, encode } from "@msgpack/msgpack";
import { Dealer } from "zeromq";

const address = process.argv[2] ?? "tcp://127.0.0.1:5555";
const width = Number(process.argv[3] ?? 64);
const height = Number(process.argv[4] ?? 48);

// Replies are checked as strictly as the server checks requests (PROTOCOL.md §Decoding).
const decodeOptions = { maxStrLength: 1 << 20, maxBinLength: 1 << 20, maxArrayLength: 1 << 20,
  maxMapLength: 1 << 20, maxExtLength: 0 };

const socket = new Dealer({ linger: 0, receiveTimeout: 30000 });
socket.connect(address);
let nextId = 1;

// One request: [msgpack header, one raw little-endian frame per array].
async function call(method, params = {}, arrays = {}) {
  const id = nextId++;
  const descriptors = [];
  const frames = [];
  for (const [name, { dtype, shape, data }] of Object.entries(arrays)) {
    frames.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength)); // no copy
    descriptors.push({ name, dtype, shape, order: "<", frame: frames.length });
  }
  await socket.send([encode({ v: 1, id, method, params, arrays: descriptors }), ...frames]);
  for (;;) {
    let reply = await socket.receive();
    if (reply[0].length === 0) reply = reply.slice(1); // an echoed delimiter, if any
    const header = decode(reply[0], decodeOptions);
    if (header.id !== id) continue; // a stale reply to an earlier request
    if (!header.ok) {
      const e = header.error;
      throw new Error(`${e.code}: ${e.message} [${e.field}] fix: ${e.fix}`);
    }
    const out = {};
    for (const d of header.arrays) {
      const frame = reply[d.frame];
      const itemsize = { uint8: 1, int32: 4, float32: 4 }[d.dtype];
      const expected = d.shape.reduce((a, b) => a * b, 1) * itemsize;
      if (itemsize === undefined || frame.length !== expected) {
        throw new Error(`reply array ${d.name}: ${d.dtype} ${d.shape} but ${frame.length} bytes`);
      }
      out[d.name] = { shape: d.shape, dtype: d.dtype, data: frame };
    }
    return { result: header.result, arrays: out };
  }
}

// The synthetic frame (tests/test_sidecar_clients.py builds the same one in numpy).
function syntheticFrame() {
  const rgb = new Uint8Array(height * width * 3);
  const depth = new Float32Array(height * width);
  const ids = new Int32Array(height * width);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      rgb[3 * i] = (x * 4) % 256;
      rgb[3 * i + 1] = (y * 4) % 256;
      rgb[3 * i + 2] = x < width / 2 ? 30 : 220;
      depth[i] = 1 + ((x + y) / (width + height)) * 4;
      ids[i] = (y < height / 2 ? 1 : 2) * (x < width / 2 ? 1 : 3);
    }
  }
  return {
    rgb: { dtype: "uint8", shape: [height, width, 3], data: rgb },
    depth_m: { dtype: "float32", shape: [height, width], data: depth },
    instance_id: { dtype: "int32", shape: [height, width], data: ids },
  };
}

try {
  const hello = await call("hello", { versions: [1], client: "node-example" });
  const version = hello.result.version;
  const controls = await call(
    "controls",
    { modalities: ["depth", "seg", "edge"], depth_min_m: 1.0, depth_max_m: 5.0, seg_seed: 3 },
    syntheticFrame(),
  );
  const summary = { version, controls: {} };
  for (const [name, arr] of Object.entries(controls.arrays)) {
    summary.controls[name] = {
      shape: arr.shape,
      sha256: createHash("sha256").update(arr.data).digest("hex"),
    };
  }
  console.log(JSON.stringify(summary));
} finally {
  socket.close();
}
