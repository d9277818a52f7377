// The statement test cases of xapi-validation (LearningLocker's maintained
// xAPI validator), as JSON: [{statement, valid}]. Its suite is written for
// mocha; here `describe`/`it` run the cases at once and collect them.
import Module from "node:module";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const load = Module._load;
Module._load = function (request, ...rest) {
  return request === "mocha" ? {} : load.call(this, request, ...rest);
};
globalThis.describe = (_name, fn) => fn();
globalThis.it = (_name, fn) => fn();
const cases = [];
const factory = require("xapi-validation/dist/tests/factory");
factory.statement((data, valid) => cases.push({ statement: data, valid }));
console.log(JSON.stringify(cases));
