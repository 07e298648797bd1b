// clone-and-push.mjs clones a repository with isomorphic-git through an
// HTTPS proxy, commits a file and pushes it back: what a Node program that
// uses isomorphic-git does through azdo-sidecar.
//
//	NODE_EXTRA_CA_CERTS=ca.pem node clone-and-push.mjs PROXY_URL_FILE URL DIR
//
// isomorphic-git's Node http plugin takes an agent per request; an
// HttpsProxyAgent built from the sidecar's proxy URL (read from its
// proxy_url_file, so the credential is in no command line) opens a CONNECT
// tunnel with Proxy-Authorization from the URL's credential. Node trusts
// the sidecar's CA through NODE_EXTRA_CA_CERTS, besides its own roots.
import fs from 'node:fs';
import path from 'node:path';
import git from 'isomorphic-git';
import nodeHttp from 'isomorphic-git/http/node';
import { HttpsProxyAgent } from 'https-proxy-agent';

const [proxyURLFile, url, dir] = process.argv.slice(2);
const agent = new HttpsProxyAgent(fs.readFileSync(proxyURLFile, 'utf8').trim());
const http = { request: (req) => nodeHttp.request({ ...req, agent }) };

await git.clone({ fs, http, dir, url, ref: 'main', singleBranch: true });
console.log('cloned', await git.resolveRef({ fs, dir, ref: 'HEAD' }));

fs.writeFileSync(path.join(dir, 'isogit.txt'), 'written by isomorphic-git\n');
await git.add({ fs, dir, filepath: 'isogit.txt' });
const who = { name: 'isomorphic-git', email: 'isogit@example.test' };
const sha = await git.commit({ fs, dir, message: 'from isomorphic-git', author: who, committer: who });
const res = await git.push({ fs, http, dir, remote: 'origin', ref: 'main', remoteRef: 'main' });
if (!res.ok || !res.refs['refs/heads/main']?.ok) {
  console.error('push:', JSON.stringify(res));
  process.exit(1);
}
console.log('pushed', sha);
// The agent keeps its tunnel open; nothing else is left to do.
agent.destroy();
