// Keeps the page's live part up to date with server-sent events while the
// tab is visible; leaves it alone while the user is selecting or typing in it,
// or has a form of it open.
(function () {
  const live = document.getElementById("live");
  if (!live || !window.EventSource) return;
  let source = null;
  function busy() {
    const a = document.activeElement;
    return (a && live.contains(a) && a.matches("input, select, textarea")) ||
      live.querySelector("input[type=checkbox]:checked, details[open]") !== null;
  }
  function open() {
    source = new EventSource("/events?page=" + encodeURIComponent(location.pathname + location.search) +
      "&have=" + encodeURIComponent(live.dataset.hash || ""));
    source.addEventListener("live", function (e) {
      if (busy()) return;
      live.innerHTML = JSON.parse(e.data);
      live.dataset.hash = e.lastEventId;
    });
  }
  document.addEventListener("visibilitychange", function () {
    if (document.hidden && source) { source.close(); source = null; }
    else if (!document.hidden && !source) open();
  });
  if (!document.hidden) open();
  // A form that asks first: data-confirm holds the question.
  document.addEventListener("submit", function (e) {
    const q = (e.submitter && e.submitter.getAttribute("data-confirm")) || e.target.getAttribute("data-confirm");
    if (q && !confirm(q)) e.preventDefault();
  });
})();
