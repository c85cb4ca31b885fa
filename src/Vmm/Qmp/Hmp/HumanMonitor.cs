using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Vmm.Diagnostics;
using Vmm.Machine;

namespace Vmm.Qmp.Hmp;

/// <summary>
/// The small readable subset of QEMU's human monitor that human-monitor-command runs: info status, info registers,
/// info cpus, info kvm, x and xp, help. Like QEMU, it never fails: problems are part of the text it returns, and every line
/// ends in CR LF.
/// </summary>
public sealed class HumanMonitor(VirtualMachine machine, VcpuRunner cpu)
{
    private static readonly (string Name, string Help)[] CommandHelp =
    [
        ("info status", "show the current VM status (running|paused)"),
        ("info registers", "show the cpu registers"),
        ("info cpus", "show infos for each CPU"),
        ("info kvm", "show KVM information"),
        ("info screen", "show the 80x25 VGA text screen (0xB8000)"),
        ("x /fmt addr", "virtual memory dump starting at 'addr'"),
        ("xp /fmt addr", "physical memory dump starting at 'addr'"),
        ("help", "show the help"),
    ];

    public string Execute(string commandLine)
    {
        string line = commandLine.Trim();
        if (line.Length == 0)
        {
            return "";
        }

        int nameEnd = 0;
        while (nameEnd < line.Length && !char.IsWhiteSpace(line[nameEnd]) && line[nameEnd] != '/')
        {
            nameEnd++;
        }

        string name = line[..nameEnd];
        string rest = line[nameEnd..].Trim();
        try
        {
            return name switch
            {
                "info" or "i" => Info(rest),
                "x" => Dump(name, rest, physical: false),
                "xp" => Dump(name, rest, physical: true),
                "help" or "?" => Help(),
                _ => Unknown(name),
            };
        }
        catch (HmpSyntaxException e)
        {
            return e.Message + "\r\n";
        }
    }

    private static string Unknown(string name) => $"unknown command: '{name}'\r\n";

    private string Info(string what) => what switch
    {
        "status" => Status(),
        "registers" => Registers(),
        "cpus" => Cpus(),
        "kvm" => Kvm(),
        "screen" => Bios.TextScreen.Render(machine.Memory),
        "" => string.Concat(CommandHelp.Where(c => c.Name.StartsWith("info ", StringComparison.Ordinal)).Select(c => $"{c.Name} -- {c.Help}\r\n")),
        _ => Unknown($"info {what}"),
    };

    private static string Help() => string.Concat(CommandHelp.Select(c => $"{c.Name} -- {c.Help}\r\n"));

    /// <summary>QEMU: "VM status: running", "VM status: paused", or "VM status: paused (postmigrate)" for other stopped states.</summary>
    private string Status()
    {
        RunState state = machine.RunState;
        string text = state == RunState.Running ? "VM status: running" : "VM status: paused";
        if (state is not (RunState.Running or RunState.Paused))
        {
            text += $" ({state.ToQmp()})";
        }

        return text + "\r\n";
    }

    private string Registers()
    {
        var report = new StringBuilder();
        CrashReporter.AppendRegisters(report, GuestMemoryView.Registers(machine, cpu));
        return string.Concat(report.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim() + "\r\n"));
    }

    /// <summary>QEMU's words: "enabled" (running on KVM), "disabled" (KVM works here but is not used), else "not compiled".</summary>
    private string Kvm()
    {
        JsonObject info = Commands.IntrospectionCommands.Kvm(machine);
        string support = info["present"]!.GetValue<bool>() ? info["enabled"]!.GetValue<bool>() ? "enabled" : "disabled" : "not compiled";
        return $"kvm support: {support}\r\n";
    }

    private string Cpus() => string.Concat(machine.Vcpus.Select((v, i) => $"{(v == cpu ? '*' : ' ')} CPU #{i}: thread_id={v.ThreadId}\r\n"));

    private string Dump(string name, string arguments, bool physical)
    {
        HmpDumpFormat format = HmpDumpFormat.Default;
        string addressText = arguments;
        if (arguments.StartsWith('/'))
        {
            int end = 1;
            while (end < arguments.Length && !char.IsWhiteSpace(arguments[end]))
            {
                end++;
            }

            format = HmpDumpFormat.Parse(arguments[1..end]);
            addressText = arguments[end..].Trim();
        }

        if (addressText.Length == 0)
        {
            throw new HmpSyntaxException($"{name}: missing address");
        }

        ulong address = ParseAddress(name, addressText);
        if (!physical && GuestMemoryView.VirtualToPhysical(machine, cpu, address) is null)
        {
            throw new HmpSyntaxException($"{name}: paging is enabled on CPU {cpu.Vcpu.Id} and vmm translates only unpaged addresses (use xp)");
        }

        // Unpaged, virtual and physical addresses are the same: both read guest physical memory.
        return HmpMemoryDump.Format(address, format, (at, destination) =>
            GuestMemoryView.RamProblem(machine.Ram, at, (ulong)destination.Length) is null
            && machine.Memory.Read(at, destination) == destination.Length);
    }

    /// <summary>A number as C reads it (strtoull base 0, as QEMU's expressions do): 0x hex, leading 0 octal, else decimal.</summary>
    private static ulong ParseAddress(string name, string text)
    {
        string digits = text;
        NumberStyles style = NumberStyles.None;
        int radix = 10;
        if (digits.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
        {
            digits = digits[2..];
            style = NumberStyles.AllowHexSpecifier;
            radix = 16;
        }
        else if (digits.Length > 1 && digits[0] == '0')
        {
            radix = 8;
        }

        try
        {
            if (radix == 8)
            {
                return Convert.ToUInt64(digits, 8);
            }

            if (digits.Length > 0 && ulong.TryParse(digits, style, CultureInfo.InvariantCulture, out ulong value))
            {
                return value;
            }
        }
        catch (Exception e) when (e is FormatException or OverflowException or ArgumentException)
        {
            // Falls through to the message below.
        }

        throw new HmpSyntaxException($"{name}: invalid address '{text}'");
    }
}
