// The live status snapshot, from the control API's event stream. An external file, not an inline
// script: the control API serves every page under a CSP without 'unsafe-inline'.
const events = new EventSource("/api/events");
events.addEventListener("status", (e) => {
  const s = JSON.parse(e.data);
  document.getElementById("state").textContent = s.phase + ": " + (s.not_earning || s.reason);
  document.getElementById("snapshot").textContent = JSON.stringify(s, null, 2);
});
