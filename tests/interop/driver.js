// Hosts bittorrent-dht nodes (webtorrent's Mainline DHT, pinned in
// package.json) for tests/integration/test_interop.py, which mixes them with
// kadmesh dht-node processes on 127.0.0.1.
//
// Protocol: one JSON request per line on stdin, one JSON reply per line on
// stdout ({"error": "..."} if a request fails).  Requests, by "cmd":
//   start    {bootstrap: ["127.0.0.1:PORT", ...] | false}
//            -> {index, id, port} once the node listens and has bootstrapped
//   rejoin   -> {}: every node repeats its join lookup (see below)
//   tables   -> {nodes: [{index, id, port, table: [{id, host, port}]}]}
//   announce {index, info_hash, port} -> {hits}  (port 0: implied_port)
//   lookup   {index, info_hash, k} -> {peers: ["IP:PORT"], closest: [ids]}
//            (closest: the k nodes nearest info_hash that answered get_peers)
//   problems -> {problems: [...]}: every 'warning' and 'error' any node
//            emitted, and any datagram that tried to leave loopback
//   quit     -> destroys every node and exits (so does the end of stdin)
//
// Nothing may leave this machine: every node binds 127.0.0.1, gets an
// explicit bootstrap list (left undefined, the library asks public routers),
// and its socket refuses to send anywhere but 127.0.0.0/8.
import DHT from 'bittorrent-dht'
import readline from 'readline'

const nodes = []
const problems = []

// bittorrent-dht reports unparsable or unexpected packets as 'warning' and
// socket failures as 'error'; check 5 of the test wants neither.
function watch (dht, index) {
  dht.on('warning', err => problems.push(`node ${index} warning: ${err.message || err}`))
  dht.on('error', err => problems.push(`node ${index} error: ${err.message || err}`))
}

function loopbackOnly (dht, index) {
  const sock = dht._rpc.socket // k-rpc -> k-rpc-socket, which sends it all
  const send = sock.send.bind(sock)
  sock.send = (peer, message, cb) => {
    const host = peer.address || peer.host
    if (!/^127\./.test(host)) {
      problems.push(`node ${index} tried to send to ${host}:${peer.port}`)
      return cb && process.nextTick(cb, new Error('not loopback'))
    }
    return send(peer, message, cb)
  }
}

function start (req, reply) {
  const index = nodes.length
  // timeout: 4 s, not 2: a reply after the timeout is a 'warning', and a
  // loaded test machine must not pass for a parser complaint.
  const dht = new DHT({ bootstrap: req.bootstrap, timeout: 4000 })
  nodes.push(dht)
  watch(dht, index)
  loopbackOnly(dht, index)
  // Bind now, in the same tick: the bootstrap lookup starts on the next
  // tick, and a send on an unbound socket would bind it to 0.0.0.0.
  dht.listen(0, '127.0.0.1')
  let waiting = 2
  const done = () => {
    if (--waiting === 0) {
      reply({ index, id: dht.nodeId.toString('hex'), port: dht.address().port })
    }
  }
  dht.once('listening', done)
  dht.once('ready', done)
}

// bittorrent-dht looks up its own ID once, when it starts, and never
// refreshes its buckets, so a node that started among the first few knows
// few others and is known to few.  Repeating the join lookup once everyone
// runs puts each node in the tables of its closest neighbours, as time and
// traffic would in a long-lived network.  It is the lookup the library's
// _bootstrap runs at start (and again when a node finds itself alone).
function rejoin (req, reply) {
  let left = nodes.length
  for (const dht of nodes) {
    dht._rpc.populate(dht.nodeId, {
      q: 'find_node', a: { id: dht.nodeId, target: dht.nodeId }
    }, () => { if (--left === 0) reply({}) })
  }
}

function tables (req, reply) {
  reply({
    nodes: nodes.map((dht, index) => ({
      index,
      id: dht.nodeId.toString('hex'),
      port: dht.address().port,
      table: dht.nodes.toArray().map(n => ({
        id: n.id.toString('hex'), host: n.host, port: n.port
      }))
    }))
  })
}

function announce (req, reply) {
  nodes[req.index].announce(req.info_hash, req.port, (err, hits) => {
    reply(err ? { error: err.message } : { hits })
  })
}

function lookup (req, reply) {
  const dht = nodes[req.index]
  const peers = new Set()
  const onpeer = (peer, infoHash) => {
    if (infoHash.toString('hex') === req.info_hash) peers.add(`${peer.host}:${peer.port}`)
  }
  dht.on('peer', onpeer)
  dht.lookup(req.info_hash, err => {
    dht.removeListener('peer', onpeer)
    if (err) return reply({ error: err.message })
    // The nodes that answered, kept by the lookup for a later announce.
    const table = dht._tables.get(req.info_hash)
    const closest = table
      ? table.closest(Buffer.from(req.info_hash, 'hex'), req.k).map(n => n.id.toString('hex'))
      : []
    reply({ peers: [...peers], closest })
  })
}

function quit () {
  let left = nodes.length
  if (!left) process.exit(0)
  for (const dht of nodes) dht.destroy(() => { if (--left === 0) process.exit(0) })
}

const commands = {
  start,
  rejoin,
  tables,
  announce,
  lookup,
  problems: (req, reply) => reply({ problems }),
  quit
}

const rl = readline.createInterface({ input: process.stdin })
rl.on('line', line => {
  const reply = obj => process.stdout.write(JSON.stringify(obj) + '\n')
  try {
    const req = JSON.parse(line)
    const cmd = commands[req.cmd]
    if (!cmd) return reply({ error: `unknown command ${req.cmd}` })
    cmd(req, reply)
  } catch (err) {
    reply({ error: err.message })
  }
})
rl.on('close', quit)
