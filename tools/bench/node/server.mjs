// bittorrent-dht as a bench server: loopback only, no bootstrap, k = 8
// like the others.  Prints `ready port=N`, then `nodes=N` every second.
import DHT from 'bittorrent-dht'

const host = process.argv[2] || '127.0.0.1'
const port = Number(process.argv[3] || 0)
const dht = new DHT({ bootstrap: false, k: 8 })

dht.on('error', (err) => { console.error(err.message); process.exit(1) })
dht.listen(port, host, () => {
  console.log(`ready port=${dht.address().port}`)
  setInterval(() => console.log(`nodes=${dht.nodes.count()}`), 1000)
})
process.on('SIGTERM', () => dht.destroy(() => process.exit(0)))
