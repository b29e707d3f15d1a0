// Progressive enhancement only: every page works without this script.
// The alert inbox refreshes its list in place every few seconds (a short poll), so a
// new alert shows up on the SPOC's phone without a reload.
(function () {
  "use strict";
  var inbox = document.getElementById("inbox");
  if (!inbox) { return; }
  var url = inbox.getAttribute("data-refresh-url");
  var seconds = parseInt(inbox.getAttribute("data-refresh-s"), 10) || 15;
  function refresh() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.redirected || !response.ok) { return null; }
        return response.text();
      })
      .then(function (html) {
        if (html !== null && html !== inbox.innerHTML) { inbox.innerHTML = html; }
      })
      .catch(function () { /* offline for a moment: try again next time */ });
  }
  window.setInterval(refresh, seconds * 1000);
}());
