// A js-libp2p node that dials a titan over each multiaddr given on the
// command line (TCP or WebSocket), identifies it and pings it, then prints
// one JSON line per address. Run with Node 22 (npm `node@22`); see
// e2e/tests/mesh.rs.
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

const node = await createLibp2p({
  transports: [tcp(), webSockets()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: { identify: identify({ agentVersion: 'shard-e2e-js', runOnConnectionOpen: false }), ping: ping() }
})

let failed = false
for (const arg of process.argv.slice(2)) {
  const ma = multiaddr(arg)
  const report = { address: arg }
  try {
    const signal = AbortSignal.timeout(20000)
    const started = performance.now()
    const connection = await node.dial(ma, { signal })
    report.connect_ms = performance.now() - started
    const id = await node.services.identify.identify(connection, { signal })
    report.peer_id = id.peerId.toString()
    report.agent_version = id.agentVersion
    report.protocol_version = id.protocolVersion
    report.protocols = id.protocols
    report.ping_ms = await node.services.ping.ping(ma, { signal })
    await connection.close()
  } catch (e) {
    report.error = String(e?.stack ?? e)
    failed = true
  }
  console.log(JSON.stringify(report))
}
await node.stop()
process.exit(failed ? 1 : 0)
