// Appends a running job's output as the server streams it (Server-Sent Events), then shows how it ended.
(function () {
  "use strict";
  var output = document.getElementById("output");
  if (!output || !output.dataset.stream || !window.EventSource) { return; }
  var status = document.getElementById("job-status");
  var note = document.getElementById("live-note");
  var source = new EventSource(output.dataset.stream);

  function atBottom() {
    return window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
  }

  source.onmessage = function (event) {
    var follow = atBottom();
    // The server sends HTML it escaped itself (ANSI colours as spans).
    output.insertAdjacentHTML("beforeend", event.data + "\n");
    if (follow) { window.scrollTo(0, document.body.scrollHeight); }
  };

  source.addEventListener("end", function (event) {
    source.close();
    var end = JSON.parse(event.data);
    var badge = document.createElement("span");
    badge.className = "badge badge-" + end.status;
    badge.textContent = end.status;
    status.replaceChildren(badge);
    if (end.description) {
      var description = document.createElement("span");
      description.className = "muted";
      description.textContent = " " + end.description;
      status.appendChild(description);
    }
    if (note) { note.textContent = "The job has finished."; }
  });
})();
