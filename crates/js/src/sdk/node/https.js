// Node's `https` client: `http`'s over TLS (rustls; the Mozilla roots and
// [sandbox] ca_file), the same allowed hosts.
import { requestWith, Agent, globalAgent, ClientRequest, IncomingMessage, createServer } from 'http';

export const request = (input, options, callback) => requestWith('https:', input, options, callback);
export function get(input, options, callback) {
  const req = request(input, options, callback);
  req.end();
  return req;
}
export { Agent, globalAgent, createServer };
export default { request, get, createServer, Agent, globalAgent, ClientRequest, IncomingMessage };
