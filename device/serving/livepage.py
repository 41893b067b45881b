"""The page GET / serves with `serve --source`: the live MJPEG stream, the current fps, the stage
times and the last answer, polling GET /live twice a second. Kept in a module (not an .html file)
so that it travels inside agent.pyz."""

PAGE = b"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>edgekit live</title>
<style>
  body { font-family: sans-serif; margin: 1em; background: #111; color: #eee; }
  #view { display: flex; gap: 1.5em; flex-wrap: wrap; }
  img { max-width: 100%; border: 1px solid #444; image-rendering: pixelated; min-width: 320px; }
  table { border-collapse: collapse; }
  td { padding: 0.1em 0.8em 0.1em 0; }
  pre { max-width: 40em; white-space: pre-wrap; font-size: 0.8em; }
  .big { font-size: 1.6em; font-weight: bold; }
</style>
</head>
<body>
<h1>edgekit live</h1>
<div id="view">
  <img id="stream" alt="the annotated live stream">
  <div>
    <div><span class="big" id="fps">-</span> fps</div>
    <table>
      <tr><td>frames</td><td id="frames">0</td></tr>
      <tr><td>dropped</td><td id="dropped">0</td></tr>
      <tr><td>corrupt</td><td id="corrupt">0</td></tr>
      <tr><td>latency p50 / p99 (ms)</td><td id="latency">-</td></tr>
    </table>
    <h3>stage p50 (ms)</h3>
    <table id="stages"></table>
    <h3>last answer</h3>
    <pre id="last">-</pre>
    <div id="state"></div>
  </div>
</div>
<script>
  const token = new URLSearchParams(location.search).get("token");
  const q = token ? "?token=" + encodeURIComponent(token) : "";
  document.getElementById("stream").src = "stream" + q;
  const set = (id, text) => { document.getElementById(id).textContent = text; };
  async function poll() {
    try {
      const s = await (await fetch("live" + q, {cache: "no-store"})).json();
      set("fps", s.current_fps ?? s.fps ?? "-");
      set("frames", s.frames); set("dropped", s.dropped); set("corrupt", s.corrupt);
      set("latency", s.latency_ms.p50 + " / " + s.latency_ms.p99);
      const rows = Object.entries(s.stages_ms).map(([k, v]) => "<tr><td>" + k + "</td><td>" + v.p50 + "</td></tr>");
      document.getElementById("stages").innerHTML = rows.join("");
      if (s.last) {
        const a = Object.assign({}, s.last); delete a.stages_ms;
        set("last", JSON.stringify(a, null, 1));
      }
      set("state", s.ended ? ("source ended" + (s.error ? ": " + s.error : "")) : "");
    } catch (e) { set("state", "no answer from the agent"); }
  }
  poll(); setInterval(poll, 500);
</script>
</body>
</html>
"""
