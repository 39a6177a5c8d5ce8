// Greedy tokens of a GGUF file by llama.cpp itself (node-llama-cpp, its CPU prebuilt): the independent check of
// keel's GGUF reading (tests/gguf_demo_test.cpp). Usage: node llama_cpp_greedy.mjs MODEL.gguf "1 2 3" N
// Prints N token ids after the prompt ids, space-separated. KEEL_NODE_LLAMA_CPP: the folder npm installed
// node-llama-cpp@3.21.1 into (make node-llama-cpp: .deps/node-llama-cpp).
import {join} from "node:path";
import {pathToFileURL} from "node:url";

const root = process.env.KEEL_NODE_LLAMA_CPP;
const {getLlama, LlamaLogLevel} =
    await import(pathToFileURL(join(root, "node_modules/node-llama-cpp/dist/index.js")).href);
const [modelPath, prompt, count] = process.argv.slice(2);
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath});
const context = await model.createContext({contextSize: 512, batchSize: 512, threads: 2});
const sequence = context.getSequence();
const ids = prompt.split(/\s+/).filter(Boolean).map(Number);
const out = [];
// yieldEogToken: go on past <|im_end|> as keel --ignore-eos does.
for await (const token of sequence.evaluate(ids, {temperature: 0, yieldEogToken: true})) {
  out.push(token);
  if (out.length >= Number(count)) break;
}
console.log(out.join(" "));
await context.dispose();
await model.dispose();
