using Iced.Intel;
using Vmm.CpuSemantics.Tests.Cases;
using Vmm.CpuSemantics.Tests.Harness;
using Vmm.CpuSemantics.Tests.Running;

namespace Vmm.CpuSemantics.Tests.Families;

/// <summary>
/// MOVS, STOS, LODS, CMPS, SCAS in bytes, words and dwords; alone, with REP (F3) and, for CMPS/SCAS, REPE and REPNE
/// ending on a match or a difference; counts 0 to 7; DF clear and set; 16-bit addressing (SI, DI, CX: the upper
/// halves must survive) and 32-bit (ESI, EDI, ECX); an ES: override on the source; overlapping MOVS. Checked: the
/// registers, the flags and 128 bytes of data holding both strings.
/// </summary>
public sealed class StringFamily
{
    private const int DataLength = 128;

    private static readonly string[] Kinds = ["Movs", "Stos", "Lods", "Cmps", "Scas"];

    public static IEnumerable<TestCase> Cases()
    {
        var factory = new CaseFactory(seed: 0x57);
        var cases = new List<TestCase>();
        foreach (var kind in Kinds)
        {
            foreach (var size in new[] { 1, 2, 4 })
            {
                var prefixes = kind is "Cmps" or "Scas"
                    ? new[] { RepPrefixKind.None, RepPrefixKind.Repe, RepPrefixKind.Repne }
                    : [RepPrefixKind.None, RepPrefixKind.Repe];
                foreach (var rep in prefixes)
                {
                    foreach (var address32 in new[] { false, true })
                    {
                        for (var i = 0; i < 14; i++)
                        {
                            cases.Add(Case(factory, kind, size, rep, address32, sourceOverride: i == 13 && kind is not ("Stos" or "Scas")));
                        }
                    }
                }
            }
        }

        return cases;
    }

    private static TestCase Case(CaseFactory factory, string kind, int size, RepPrefixKind rep, bool address32, bool sourceOverride)
    {
        var c = factory.Begin();
        var down = factory.NextBool();
        c.State.SetFlags(EFlags.DF, down);
        var data = factory.NextBytes(DataLength);
        c.State.Data = data;
        var count = (uint)factory.Next(8);

        // Source near the start of the data, destination in the second half; going down they start high enough
        // that 7 dwords stay inside. One MOVS in eight overlaps its strings instead.
        var source = down ? 40 + factory.Next(8) : 8 + factory.Next(8);
        var destination = kind == "Movs" && factory.Next(8) == 0
            ? source + (down ? -1 : 1) * size * factory.Next(3)
            : down ? 100 + factory.Next(8) : 64 + factory.Next(8);
        var step = down ? -size : size;
        var elements = Math.Max((int)count, 1);
        if (kind == "Cmps")
        {
            // Equal strings, then (mostly) one difference, so REPE and REPNE stop at different places.
            for (var k = 0; k < elements * size; k++)
            {
                data[destination + Offset(k, size, down)] = data[source + Offset(k, size, down)];
            }

            if (factory.Next(4) != 0)
            {
                data[destination + Offset(factory.Next(elements * size), size, down)] ^= (byte)(1 + factory.Next(255));
            }
        }

        var accumulator = OperandWidth.Accumulator(size * 8);
        var value = factory.Interesting(size * 8);
        if (kind == "Scas")
        {
            // Elements equal to the accumulator except (mostly) one, or (REPNE) one equal among random ones.
            var matchAt = factory.Next(4) != 0 ? factory.Next(elements) : -1;
            for (var e = 0; e < elements; e++)
            {
                var equal = rep == RepPrefixKind.Repne ? e == matchAt : e != matchAt;
                for (var b = 0; b < size; b++)
                {
                    data[destination + e * step + b] = equal ? (byte)(value >> (8 * b)) : (byte)factory.Next(256);
                }
            }
        }

        // LODS overwrites the accumulator: its old value is as good as any.
        c.Fixed(accumulator, value);

        if (address32)
        {
            c.Fixed(Register.ECX, count);
            c.Fixed(Register.ESI, (uint)source);
            c.Fixed(Register.EDI, (uint)destination);
        }
        else
        {
            // 16-bit addressing: only CX, SI and DI count; the upper halves are random and must stay.
            c.Fixed(Register.CX, count);
            c.Fixed(Register.SI, (uint)source);
            c.Fixed(Register.DI, (uint)destination);
        }

        var segment = Register.None;
        if (sourceOverride)
        {
            // DS points elsewhere (at harness memory, read only): the source must come through ES.
            c.State.Ds = 0x1000;
            segment = Register.ES;
        }

        var addressSize = address32 ? 32 : 16;
        var instruction = (kind, size) switch
        {
            ("Movs", 1) => Instruction.CreateMovsb(addressSize, segment, rep),
            ("Movs", 2) => Instruction.CreateMovsw(addressSize, segment, rep),
            ("Movs", _) => Instruction.CreateMovsd(addressSize, segment, rep),
            ("Stos", 1) => Instruction.CreateStosb(addressSize, rep),
            ("Stos", 2) => Instruction.CreateStosw(addressSize, rep),
            ("Stos", _) => Instruction.CreateStosd(addressSize, rep),
            ("Lods", 1) => Instruction.CreateLodsb(addressSize, segment, rep),
            ("Lods", 2) => Instruction.CreateLodsw(addressSize, segment, rep),
            ("Lods", _) => Instruction.CreateLodsd(addressSize, segment, rep),
            ("Cmps", 1) => Instruction.CreateCmpsb(addressSize, segment, rep),
            ("Cmps", 2) => Instruction.CreateCmpsw(addressSize, segment, rep),
            ("Cmps", _) => Instruction.CreateCmpsd(addressSize, segment, rep),
            ("Scas", 1) => Instruction.CreateScasb(addressSize, rep),
            ("Scas", 2) => Instruction.CreateScasw(addressSize, rep),
            _ => Instruction.CreateScasd(addressSize, rep),
        };
        var prefix = rep switch { RepPrefixKind.Repe => kind is "Cmps" or "Scas" ? "REPE " : "REP ", RepPrefixKind.Repne => "REPNE ", _ => "" };
        var form = $"{prefix}{kind.ToUpperInvariant()}{" BWD"[size == 4 ? 3 : size]} a{addressSize}{(sourceOverride ? " ES:" : "")}";
        return c.Build(form, instruction);
    }

    [Fact]
    public void MatchesQemu() => DifferentialHarness.AssertSameAsQemu(Cases());

    /// <summary>Where byte <paramref name="k"/> of a string of <paramref name="size"/>-byte elements lies from its first element.</summary>
    private static int Offset(int k, int size, bool down) => down ? -(k / size) * size + k % size : k;
}
