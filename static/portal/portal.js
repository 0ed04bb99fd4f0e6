/* Small page helpers: copy buttons (data-copy="<selector of the element to copy>"). */
(function () {
  "use strict";
  document.addEventListener("click", function (e) {
    var button = e.target.closest("button[data-copy]");
    if (!button) return;
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) return;
    var text = source.value !== undefined ? source.value : source.textContent;
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text.trim()).then(done);
    } else {
      var area = document.createElement("textarea");
      area.value = text.trim();
      document.body.appendChild(area);
      area.select();
      document.execCommand("copy");
      area.remove();
      done();
    }
  });
})();

/* Forms with a kind (https or sqs) show only the fields of the chosen kind. */
(function () {
  "use strict";
  var ONLY = {
    source_queue_arn: "sqs", queue_arn: "sqs",
    url: "https", auth_type: "https", auth_username: "https", auth_secret: "https",
  };
  function apply(grid, kind) {
    grid.querySelectorAll("[data-field]").forEach(function (el) {
      var only = ONLY[el.getAttribute("data-field")];
      el.hidden = Boolean(only && kind && only !== kind);
    });
  }
  document.querySelectorAll("[data-kind-form]").forEach(function (grid) {
    var select = grid.querySelector("[data-field=kind] select");
    if (select) {
      apply(grid, select.value);
      select.addEventListener("change", function () { apply(grid, select.value); });
    } else {
      apply(grid, grid.getAttribute("data-kind"));
    }
  });
})();

/* Forms that ask first (data-confirm="<question>"): an event listener, not an inline handler,
   as the Content-Security-Policy allows no inline script. */
(function () {
  "use strict";
  document.addEventListener("submit", function (e) {
    var form = e.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.getAttribute("data-confirm"))) e.preventDefault();
  });
})();
