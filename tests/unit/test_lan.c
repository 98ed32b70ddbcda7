/* LAN discovery's announce and schedule (net/lan.h), with literal
 * timestamps: what goes on the wire, what is refused, whom we contact and
 * how often we speak. */
#include <criterion/criterion.h>
#include <string.h>

#include "net/lan.h"
#include "proto/err.h"

static struct km_lan lan;
static struct km_lan_announce self = { .network = 0x6b6d3031, .port = 7000 };

static void setup(void)
{
	memset(&self.id, 0x11, sizeof(self.id));
	km_lan_init(&lan, &self, 1000);
}

TestSuite(lan, .init = setup);

static struct km_addr from_ip(uint8_t last)
{
	struct km_addr a;
	uint8_t ip[4] = { 10, 77, 0, last };

	km_addr_set_v4(&a, ip, KM_LAN_PORT);
	return a;
}

static int announce(const struct km_lan_announce *a, char *out, size_t cap)
{
	return km_lan_encode(out, cap, a);
}

Test(lan, an_announce_decodes_to_what_was_encoded)
{
	char buf[KM_LAN_MSG_MAX];
	struct km_lan_announce back;
	int len = announce(&self, buf, sizeof(buf));

	cr_assert_gt(len, 0);
	cr_assert(strstr(buf, "Host: 239.192.152.143:6771\r\n"));
	cr_assert_eq(km_lan_decode((uint8_t *)buf, (size_t)len, &back), 0);
	cr_assert_eq(back.port, 7000);
	cr_assert_eq(back.network, 0x6b6d3031);
	cr_assert(km_id_eq(&back.id, &self.id));
}

Test(lan, malformed_announces_are_refused)
{
	static const char *bad[] = {
		"",
		"BT-SEARCH * HTTP/1.1\r\nPort: 1\r\n\r\n",
		"KM-SEARCH * HTTP/1.1\r\nPort: 1\r\nNetwork: 1\r\n\r\n",
		"KM-SEARCH * HTTP/1.1\r\nPort: 0\r\nNetwork: 1\r\nNode: "
		"1111111111111111111111111111111111111111\r\n\r\n",
		"KM-SEARCH * HTTP/1.1\r\nPort: 70000\r\nNetwork: 1\r\nNode: "
		"1111111111111111111111111111111111111111\r\n\r\n",
		"KM-SEARCH * HTTP/1.1\r\nPort: 1\r\nNetwork: zz\r\nNode: "
		"1111111111111111111111111111111111111111\r\n\r\n",
		"KM-SEARCH * HTTP/1.1\r\nPort: 1\r\nNetwork: 1\r\nNode: 11\r\n\r\n",
		"KM-SEARCH * HTTP/1.1\r\nno colon here\r\n\r\n",
	};
	struct km_lan_announce a;
	uint8_t big[KM_LAN_MSG_MAX + 1];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_lt(km_lan_decode((const uint8_t *)bad[i],
					   strlen(bad[i]), &a), 0, "%zu", i);
	memset(big, 'A', sizeof(big));
	cr_assert_eq(km_lan_decode(big, sizeof(big), &a), KM_ERR_TOO_LONG);
	cr_assert_eq(km_lan_decode((const uint8_t *)"KM\0", 3, &a),
		     KM_ERR_SYNTAX);
}

Test(lan, announces_start_at_once_and_back_off_to_a_minute)
{
	char buf[KM_LAN_MSG_MAX];
	km_ms wake = 0, now = 1000;
	int sent = 0;

	cr_assert_gt(km_lan_tick(&lan, now, buf, sizeof(buf), &wake), 0);
	cr_assert_eq(wake, 2000);
	cr_assert_eq(km_lan_tick(&lan, 1500, buf, sizeof(buf), &wake), 0);
	for (now = 2000; now < 1000 + KM_MINUTES(10); now = wake)
		sent += km_lan_tick(&lan, now, buf, sizeof(buf), &wake) > 0;
	cr_assert_eq(wake - lan.last_sent, KM_LAN_MAX_MS);
	cr_assert_lt(sent, 20, "%d announces in 10 minutes", sent);
}

Test(lan, a_node_of_our_network_is_contacted_at_its_announced_port)
{
	struct km_lan_announce other = self;
	char buf[KM_LAN_MSG_MAX];
	struct km_addr contact, from = from_ip(2);
	int len;

	memset(&other.id, 0x22, sizeof(other.id));
	other.port = 7001;
	len = announce(&other, buf, sizeof(buf));
	cr_assert(km_lan_recv(&lan, &from, (uint8_t *)buf, (size_t)len, 2000,
			      &contact));
	cr_assert_eq(contact.port, 7001);
	cr_assert(km_addr_ip_eq(&contact, &from));
	/* Heard again soon: nothing new to do. */
	cr_assert_not(km_lan_recv(&lan, &from, (uint8_t *)buf, (size_t)len,
				  3000, &contact));
	cr_assert(km_lan_recv(&lan, &from, (uint8_t *)buf, (size_t)len,
			      3000 + KM_LAN_RECONTACT_MS, &contact));
}

Test(lan, ourselves_and_other_networks_are_ignored)
{
	struct km_lan_announce other = self;
	char buf[KM_LAN_MSG_MAX];
	struct km_addr contact, from = from_ip(2);
	int len = announce(&self, buf, sizeof(buf));

	cr_assert_not(km_lan_recv(&lan, &from, (uint8_t *)buf, (size_t)len,
				  2000, &contact));
	memset(&other.id, 0x22, sizeof(other.id));
	other.network = 1;
	len = announce(&other, buf, sizeof(buf));
	cr_assert_not(km_lan_recv(&lan, &from, (uint8_t *)buf, (size_t)len,
				  2000, &contact));
	cr_assert_eq(lan.stats.foreign, 1);
}

Test(lan, a_newcomer_is_answered_within_a_second)
{
	struct km_lan_announce other = self;
	char buf[KM_LAN_MSG_MAX];
	struct km_addr contact, from = from_ip(2);
	km_ms wake;
	int len;

	for (km_ms now = 1000; now < 1000 + KM_MINUTES(5); now = wake)
		km_lan_tick(&lan, now, buf, sizeof(buf), &wake);
	memset(&other.id, 0x22, sizeof(other.id));
	len = announce(&other, buf, sizeof(buf));
	km_lan_recv(&lan, &from, (uint8_t *)buf, (size_t)len,
		    lan.last_sent + 5000, &contact);
	cr_assert_leq(lan.next, lan.last_sent + KM_LAN_ANSWER_GAP_MS);
}

Test(lan, many_nodes_keep_memory_bounded)
{
	struct km_lan_announce other = self;
	char buf[KM_LAN_MSG_MAX];
	struct km_addr contact, from = from_ip(2);

	for (unsigned i = 0; i < 1000; i++) {
		int len;

		memcpy(other.id.b, &i, sizeof(i));
		len = announce(&other, buf, sizeof(buf));
		cr_assert(km_lan_recv(&lan, &from, (uint8_t *)buf, (size_t)len,
				      2000 + i, &contact));
	}
	cr_assert_eq(lan.stats.reported, 1000);
}
