// The fixed parts of the report page: head, style sheet, navigation and the inline script.
#pragma once

#include <ostream>
#include <string>

namespace chorus::eval::report {

// <!DOCTYPE html> up to the opening of the content: a Content-Security-Policy that lets the page
// load nothing from anywhere, the style sheet, an error trap (uncaught script errors are listed
// in <pre id="page-errors"> and counted in <html data-errors>), and the section navigation.
void write_page_start(std::ostream& out, const std::string& title);

// The script that wires the example filters and the attention map pickers, then marks the page
// as ready (<html data-rendered="ok">); closes the document.
void write_page_end(std::ostream& out);

}  // namespace chorus::eval::report
