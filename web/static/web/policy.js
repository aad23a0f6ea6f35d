// The severity policy form: "Add a condition" copies the level's empty row (Django's formset
// __prefix__ replaced by the next index, TOTAL_FORMS raised); ticking "Remove" greys the row out.
// A yes/no flag has no threshold: its number box is hidden while a flag is chosen.
// Without this script the form still works: one spare row per level, and the Remove boxes.
(function () {
  "use strict";
  function showThreshold(select) {
    var isFlag = select.value.indexOf("flag:") === 0;
    select.closest(".condition-row").querySelectorAll(".threshold").forEach(function (part) {
      part.hidden = isFlag;
    });
  }
  document.querySelectorAll(".policy-form .condition-row select").forEach(showThreshold);
  document.querySelectorAll(".policy-form .add-condition").forEach(function (button) {
    var level = button.dataset.level;
    var prefix = "rules-" + level;
    var total = document.querySelector('input[name="' + prefix + '-TOTAL_FORMS"]');
    var list = document.getElementById("conditions-" + level);
    var template = document.getElementById("empty-condition-" + level);
    if (!total || !list || !template) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      var index = parseInt(total.value, 10);
      var html = template.innerHTML.replace(/__prefix__/g, String(index));
      list.insertAdjacentHTML("beforeend", html);
      total.value = String(index + 1);
      var added = list.lastElementChild.querySelector("select");
      if (added) added.focus();
    });
  });
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (box.matches && box.matches(".policy-form .condition-row select")) showThreshold(box);
    if (box.matches && box.matches(".condition-row .remove input")) {
      box.closest(".condition-row").classList.toggle("removed", box.checked);
    }
  });
})();
