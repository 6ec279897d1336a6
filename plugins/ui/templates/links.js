// Links marked data-airflow open an Airflow page (a DAG, a run) in the whole window. Airflow shows this
// page in a same-origin iframe whose sandbox forbids target="_top", so the link is followed from an
// anchor in the top document instead. Outside an iframe it is an ordinary link.
document.addEventListener("click", function (event) {
  var link = event.target.closest && event.target.closest("a[data-airflow]");
  if (!link || window.top === window || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) {
    return;
  }
  try {
    var doc = window.top.document;
    var anchor = doc.createElement("a");
    anchor.href = link.href;
    doc.body.appendChild(anchor);
    anchor.click();
    anchor.remove();
    event.preventDefault();
  } catch (error) {
    // Not same-origin after all: let the link open inside the frame.
  }
});
