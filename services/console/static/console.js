// Progressive enhancement only: every page works without this script.
// The alert inbox listens to the console's event stream (server-sent events) and swaps
// in the list whenever router's answer changes, so a new alert shows up on the SPOC's
// phone without a reload. A browser without EventSource, or a stream that cannot be
// opened, polls the list instead; without script the page reloads itself (<noscript>).
(function () {
  "use strict";
  var inbox = document.getElementById("inbox");
  if (!inbox) { return; }
  var pollUrl = inbox.getAttribute("data-refresh-url");
  var eventsUrl = inbox.getAttribute("data-events-url");
  var seconds = parseInt(inbox.getAttribute("data-refresh-s"), 10) || 15;
  function show(html) {
    if (html !== null && html !== inbox.innerHTML) { inbox.innerHTML = html; }
  }
  function poll() {
    inbox.setAttribute("data-live", "poll");
    window.setInterval(function () {
      fetch(pollUrl, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) {
          // Sent to the sign-in page: the session ended, so show that page.
          if (response.redirected) { window.location.reload(); return null; }
          if (!response.ok) { return null; }
          return response.text();
        })
        .then(show)
        .catch(function () { /* offline for a moment: try again next time */ });
    }, seconds * 1000);
  }
  if (!window.EventSource || !eventsUrl) { poll(); return; }
  var source = new EventSource(eventsUrl);
  source.addEventListener("open", function () { inbox.setAttribute("data-live", "events"); });
  source.addEventListener("inbox", function (event) { show(event.data); });
  // The session ended (revoked or expired): reloading leads to the sign-in page.
  source.addEventListener("signin", function () { source.close(); window.location.reload(); });
  source.addEventListener("error", function () {
    // EventSource reconnects by itself; only a stream refused outright needs the poll.
    if (source.readyState === EventSource.CLOSED) { poll(); }
  });
}());
