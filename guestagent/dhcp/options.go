package dhcp

import "github.com/insomniacslk/dhcp/dhcpv4"

// requested are the options asked for (option 55) on top of nclient4's 1, 3, 6 and 15:
// servers may leave out what was not asked for, so the lease timers are asked for too.
var requested = []dhcpv4.OptionCode{
	dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer,
	dhcpv4.OptionIPAddressLeaseTime, dhcpv4.OptionServerIdentifier,
	dhcpv4.OptionRenewTimeValue, dhcpv4.OptionRebindingTimeValue,
}

// requestModifiers are added to every DISCOVER and REQUEST.
func requestModifiers(hostname string) []dhcpv4.Modifier {
	m := []dhcpv4.Modifier{dhcpv4.WithRequestedOptions(requested...)}
	if hostname != "" {
		m = append(m, dhcpv4.WithOption(dhcpv4.OptHostName(hostname)))
	}
	return m
}
