# Your model: the one file of this bundle you edit. An unstructured model answers any request body
# with any bytes, on POST /predictUnstructured/. cmkit's R runtime (and DRUM on DataRobot) calls:
#
# - load_model(code_dir) once at start; what it returns is the model score_unstructured() receives.
# - score_unstructured(model, data, query, ...) for each request: data is the body, a character
#   value when the Content-Type is textual (text/*, application/json; decoded with its charset),
#   else a raw vector; query is a named list of the query string's parameters; `...` holds
#   mimetype, charset and headers. Return a character or raw value, NULL, or
#   list(data, list(mimetype = ..., charset = ...)) to name the answer's Content-Type.
#
# The model here counts the words of a text and answers a JSON document; ?format=text answers the
# count alone. Replace it with yours.

load_model <- function(code_dir) {
  list(pattern = "[[:alpha:]']+")
}

score_unstructured <- function(model, data, query, ...) {
  text <- if (is.raw(data)) rawToChar(data) else data
  words <- regmatches(text, gregexpr(model$pattern, text))[[1]]
  if (!is.null(query$format) && query$format == "text") {
    return(as.character(length(words)))
  }
  longest <- if (length(words)) words[which.max(nchar(words))] else ""
  answer <- sprintf('{"words": %d, "longest": "%s"}', length(words), gsub('(["\\\\])', "\\\\\\1", longest))
  list(answer, list(mimetype = "application/json", charset = "utf-8"))
}
