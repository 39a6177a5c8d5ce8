// The OpenAI Responses API (POST /v1/responses): the request's input items become the chat messages the model's
// template renders (responses_input.cpp), and the output becomes the response object — message, reasoning and
// function_call items — or its stream of events, response.created through response.completed, each numbered by
// sequence_number (responses.cpp). Stored responses (store: true, the default) are kept in a ResponseStore, so
// previous_response_id continues a conversation and GET/DELETE /v1/responses/{id} find it.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "server/api.h"
#include "server/response_store.h"

namespace keel::server {

struct ResponsesRequest {
  GenerationSpec spec;                // messages for the template, tools, sampling, max_output_tokens, stream
  json conversation = json::array();  // the previous response's conversation, then this request's input items
  json echo = json::object();         // request fields the response object repeats (instructions, tools, ...)
  bool store = true;
  bool reasoning_summary = false;     // reasoning.summary asked for: reasoning items carry the text as summary too
  // Functions flattened out of a `namespace` tool, by name → the namespace (their function_call items name it).
  std::map<std::string, std::string> namespaces;
};

// `store` is read for previous_response_id: an unknown id is kNotFound ("previous_response_id: ...").
Result<ResponsesRequest> parse_responses_request(const json& body, ResponseStore& store);

// ctx.id is the response's id ("resp_…"). The writer keeps the finished response in `store` when the request
// asked to (store: true). `store` must outlive the writer.
std::unique_ptr<ResponseWriter> make_responses_writer(ResponseContext ctx, ResponsesRequest request,
                                                      ResponseStore* store);

}  // namespace keel::server
