// Drives SkillStream's /xapi/ with @xapi/xapi, a maintained xAPI client:
//   node client.mjs ENDPOINT WRITE_KEY VERSION < statements.json
// Sends the first statement alone, the rest as one array, the first again
// (a retry) and reads it back; prints what the client got, as JSON.
import XAPI from "@xapi/xapi";

const [endpoint, key, version] = process.argv.slice(2);
const statements = JSON.parse(await new Promise((ok) => {
  let data = "";
  process.stdin.on("data", (c) => (data += c)).on("end", () => ok(data));
}));
const xapi = new XAPI({ endpoint, auth: XAPI.toBasicAuth(key, "secret"), version });
const out = {};
const about = await xapi.getAbout();
out.about = about.data;
out.one = (await xapi.sendStatement({ statement: statements[0] })).data;
out.many = (await xapi.sendStatements({ statements: statements.slice(1) })).data;
out.retry = (await xapi.sendStatement({ statement: statements[0] })).data;
const got = await xapi.getStatement({ statementId: out.one[0] });
out.got = got.data;
out.version_header = got.headers["x-experience-api-version"];
try {
  await xapi.sendStatement({ statement: { ...statements[0], result: { completion: false } } });
  out.conflict = "accepted";
} catch (err) {
  out.conflict = err.response ? err.response.status : String(err);
}
console.log(JSON.stringify(out));
