#!/usr/bin/env node
// A small SMSC for smsdrop's SMPP driver tests, built on node-smpp, an SMPP
// implementation independent of the driver's gosmpp.
//
//   node smsc.js [--port N] [--system-id ID] [--password PW] [--ids dec|hex]
//
// It listens on 127.0.0.1 only (port 0, the default, picks a free one) and
// writes one JSON object a line on stdout:
//
//   {"ev":"listening","port":N}                       once, first
//   {"ev":"pdu","conn":C,"command":"submit_sm",...}   every PDU received, with
//       its fields; short_message is the raw bytes in hex (node-smpp's
//       decoding is switched off, so these are the bytes on the wire), and a
//       submit_sm also carries the answer given: resp_status and message_id,
//       or held:true
//   {"ev":"ack","cmd":...,"tag":...}                  each command done
//   {"ev":"closed","conn":C}                          a connection ended
//
// It reads one JSON command a line on stdin, and exits when stdin closes:
//
//   {"cmd":"config", "password":..., "system_id":..., "ids":"dec"|"hex",
//        "statuses":[88,88], "hold_after":N|null}
//       statuses answer the next submit_sm in turn (then 0); hold_after N
//       answers N more submit_sm and then none (null: answer all)
//   {"cmd":"receipt", "id":..., "stat":"DELIVRD", "err":"000", "tlv_id":...,
//        "state":N, "text":true, "to":..., "from":..., "tag":...}
//       sends a delivery receipt (esm_class 0x04) to the newest bound
//       session: "id:<id> ... stat:<stat>" text unless text is false, a
//       receipted_message_id TLV with tlv_id, a message_state TLV with state
//   {"cmd":"mo", "from":..., "from_ton":1, "to":..., "data_coding":0,
//        "esm_class":0, "short_message":"<hex>", "sar":[ref,total,seq],
//        "tag":...}
//       sends a mobile-originated deliver_sm; the ack carries its
//       sequence_number
//   {"cmd":"kill"}
//       destroys every connection, as a crash would
'use strict';

const smpp = require('smpp');
const readline = require('readline');

// Record short_message as sent, not as node-smpp would decode it.
delete smpp.commands.submit_sm.params.short_message.filter;

const args = process.argv.slice(2);
function arg(name, def) {
	const i = args.indexOf('--' + name);
	return i >= 0 && i + 1 < args.length ? args[i + 1] : def;
}

const config = {
	system_id: arg('system-id', 'smsdrop'),
	password: arg('password', 'secret'),
	ids: arg('ids', 'dec'),
	statuses: [],
	hold_after: null,
};
let nextID = 1;
let nextConn = 1;
const bound = []; // bound sessions, oldest first

function emit(obj) {
	process.stdout.write(JSON.stringify(obj) + '\n');
}

function messageID() {
	const n = nextID++;
	return config.ids === 'hex' ? n.toString(16).toUpperCase().padStart(8, '0') : String(n);
}

function hex(v) {
	if (Buffer.isBuffer(v)) {
		return v.toString('hex');
	}
	return v == null ? '' : Buffer.from(String(v), 'latin1').toString('hex');
}

function record(conn, pdu) {
	const r = {
		ev: 'pdu',
		conn: conn,
		command: pdu.command,
		command_status: pdu.command_status,
		sequence_number: pdu.sequence_number,
	};
	for (const k of ['system_id', 'password', 'system_type', 'service_type',
		'source_addr_ton', 'source_addr_npi', 'source_addr',
		'dest_addr_ton', 'dest_addr_npi', 'destination_addr',
		'esm_class', 'protocol_id', 'priority_flag', 'registered_delivery',
		'data_coding', 'sm_default_msg_id', 'message_id']) {
		if (pdu[k] !== undefined) {
			r[k] = pdu[k];
		}
	}
	if (pdu.short_message !== undefined) {
		r.short_message = hex(pdu.short_message);
	}
	if (pdu.validity_period instanceof Date) {
		r.validity_period = pdu.validity_period.toISOString();
	} else if (pdu.validity_period) {
		r.validity_period = String(pdu.validity_period);
	}
	return r;
}

const server = smpp.createServer(function (session) {
	const conn = nextConn++;
	let isBound = false;
	// Without it, Nagle's algorithm holds each small PDU until the last
	// one is acknowledged: 40 ms a round trip against a delayed ACK.
	session.socket.setNoDelay(true);
	session.on('error', function (err) {
		emit({ ev: 'error', conn: conn, error: String(err) });
	});
	session.on('close', function () {
		const i = bound.indexOf(session);
		if (i >= 0) {
			bound.splice(i, 1);
		}
		emit({ ev: 'closed', conn: conn });
	});
	session.on('pdu', function (pdu) {
		const r = record(conn, pdu);
		switch (pdu.command) {
		case 'bind_transceiver': {
			let status = 0;
			if (pdu.system_id !== config.system_id) {
				status = smpp.ESME_RINVSYSID;
			} else if (pdu.password !== config.password) {
				status = smpp.ESME_RINVPASWD;
			}
			r.resp_status = status;
			emit(r);
			if (status !== 0) {
				session.send(pdu.response({ command_status: status }));
				session.close();
				return;
			}
			session.send(pdu.response({ system_id: 'nodesmsc' }));
			isBound = true;
			bound.push(session);
			return;
		}
		case 'bind_transmitter':
		case 'bind_receiver':
			r.resp_status = smpp.ESME_RBINDFAIL;
			emit(r);
			session.send(pdu.response({ command_status: smpp.ESME_RBINDFAIL }));
			session.close();
			return;
		case 'submit_sm': {
			if (!isBound) {
				r.resp_status = smpp.ESME_RINVBNDSTS;
				emit(r);
				session.send(pdu.response({ command_status: smpp.ESME_RINVBNDSTS }));
				return;
			}
			if (config.hold_after !== null) {
				if (config.hold_after <= 0) {
					r.held = true;
					emit(r);
					return;
				}
				config.hold_after--;
			}
			const status = config.statuses.length > 0 ? config.statuses.shift() : 0;
			r.resp_status = status;
			if (status === 0) {
				r.message_id = messageID();
				emit(r);
				session.send(pdu.response({ message_id: r.message_id }));
			} else {
				emit(r);
				session.send(pdu.response({ command_status: status }));
			}
			return;
		}
		case 'enquire_link':
			emit(r);
			session.send(pdu.response());
			return;
		case 'unbind':
			emit(r);
			session.send(pdu.response());
			session.close();
			return;
		default:
			emit(r);
			if (!pdu.isResponse()) {
				session.send(pdu.response({ command_status: smpp.ESME_RINVCMDID }));
			}
		}
	});
});

function deliver(cmd, fields, done) {
	const session = bound[bound.length - 1];
	if (!session) {
		done('no bound session');
		return;
	}
	const pdu = new smpp.PDU('deliver_sm', fields);
	session.send(pdu);
	done(null, pdu.sequence_number);
}

const commands = {
	config: function (cmd, done) {
		for (const k of ['system_id', 'password', 'ids', 'statuses', 'hold_after']) {
			if (k in cmd) {
				config[k] = cmd[k];
			}
		}
		done(null);
	},
	receipt: function (cmd, done) {
		const stat = cmd.stat || 'DELIVRD';
		const fields = {
			source_addr_ton: 1,
			source_addr_npi: 1,
			source_addr: cmd.from || '447700900123',
			dest_addr_ton: 5,
			dest_addr_npi: 0,
			destination_addr: cmd.to || 'smsdrop',
			esm_class: 0x04,
			data_coding: 0,
			short_message: Buffer.alloc(0),
		};
		if (cmd.text !== false) {
			fields.short_message = Buffer.from('id:' + cmd.id + ' sub:001 dlvrd:' +
				(stat === 'DELIVRD' ? '001' : '000') +
				' submit date:2611231000 done date:2611231001 stat:' + stat +
				' err:' + (cmd.err || '000') + ' text:', 'latin1');
		}
		if (cmd.tlv_id !== undefined) {
			fields.receipted_message_id = cmd.tlv_id;
		}
		if (cmd.state !== undefined) {
			fields.message_state = cmd.state;
		}
		deliver(cmd, fields, done);
	},
	mo: function (cmd, done) {
		const fields = {
			source_addr_ton: cmd.from_ton === undefined ? 1 : cmd.from_ton,
			source_addr_npi: cmd.from_npi === undefined ? 1 : cmd.from_npi,
			source_addr: cmd.from,
			dest_addr_ton: cmd.to_ton === undefined ? 5 : cmd.to_ton,
			dest_addr_npi: cmd.to_npi === undefined ? 0 : cmd.to_npi,
			destination_addr: cmd.to,
			esm_class: cmd.esm_class || 0,
			data_coding: cmd.data_coding || 0,
			short_message: Buffer.from(cmd.short_message || '', 'hex'),
		};
		if (cmd.sar) {
			fields.sar_msg_ref_num = cmd.sar[0];
			fields.sar_total_segments = cmd.sar[1];
			fields.sar_segment_seqnum = cmd.sar[2];
		}
		deliver(cmd, fields, done);
	},
	kill: function (cmd, done) {
		const n = server.sessions.length;
		for (const s of server.sessions.slice()) {
			s.destroy();
		}
		done(null, undefined, n);
	},
};

readline.createInterface({ input: process.stdin }).on('line', function (line) {
	if (!line.trim()) {
		return;
	}
	let cmd;
	try {
		cmd = JSON.parse(line);
	} catch (e) {
		emit({ ev: 'ack', error: 'bad JSON: ' + e.message });
		return;
	}
	const f = commands[cmd.cmd];
	if (!f) {
		emit({ ev: 'ack', cmd: cmd.cmd, tag: cmd.tag, error: 'unknown command' });
		return;
	}
	f(cmd, function (err, seq, count) {
		const a = { ev: 'ack', cmd: cmd.cmd, tag: cmd.tag };
		if (err) {
			a.error = err;
		}
		if (seq !== undefined) {
			a.sequence_number = seq;
		}
		if (count !== undefined) {
			a.count = count;
		}
		emit(a);
	});
}).on('close', function () {
	process.exit(0);
});

server.listen(Number(arg('port', '0')), '127.0.0.1', function () {
	emit({ ev: 'listening', port: server.address().port });
});
