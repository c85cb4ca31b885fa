using Iced.Intel;

namespace Vmm.Guests;

/// <summary>
/// A thin two-pass wrapper around Iced's 16-bit <see cref="Assembler"/>.
/// </summary>
/// <remarks>
/// Iced can branch to a label in 16-bit code, but it cannot use a label as an absolute
/// address (<c>mov si, msg</c>, <c>lgdt [gdtr]</c>, <c>jmp 0:main</c>): its label memory
/// operands are IP-relative, which real mode does not have. So a guest is emitted by a
/// function that is run more than once: the first pass uses a placeholder for every
/// address, the next passes use the label addresses of the previous pass, until they stop
/// moving (in practice after the second pass, because 16-bit absolute operands have a
/// fixed size). Labels are therefore named by strings, which survive from pass to pass.
/// <para>
/// It also collects what a guest uses from <see cref="RealModeRoutines"/> and the strings it
/// prints, and emits them once after the guest's own code, so a guest only carries the
/// routines it calls.
/// </para>
/// </remarks>
public sealed class GuestAssembler
{
    /// <summary>Where the VMM loads the image and starts it (CS:IP = 0000:7C00).</summary>
    public const ushort LoadAddress = 0x7C00;

    private const int MaxPasses = 8;

    private readonly IReadOnlyDictionary<string, ulong>? _previous;
    private readonly Dictionary<string, Label> _labels = new(StringComparer.Ordinal);
    private readonly HashSet<string> _bound = new(StringComparer.Ordinal);
    private readonly HashSet<string> _data = new(StringComparer.Ordinal);
    private readonly List<Routine> _routines = [];
    private readonly Dictionary<string, string> _strings = new(StringComparer.Ordinal);

    private GuestAssembler(IReadOnlyDictionary<string, ulong>? previous) => _previous = previous;

    /// <summary>The underlying Iced assembler (bitness 16) for ordinary instructions.</summary>
    public Assembler Asm { get; } = new(16);

    /// <summary>
    /// Assembles a guest: runs <paramref name="emit"/> (which must emit the same code on every
    /// call) until label addresses are stable, and returns the image with its symbols.
    /// </summary>
    public static GuestImage Build(Action<GuestAssembler> emit)
    {
        IReadOnlyDictionary<string, ulong>? addresses = null;
        for (var pass = 0; pass < MaxPasses; pass++)
        {
            var g = new GuestAssembler(addresses);
            // Every image starts with the label "start" so listings and symbols begin at the entry point.
            g.Bind("start");
            emit(g);
            g.EmitDeferred();
            var (bytes, found) = g.Assemble();
            if (addresses is not null && SameAddresses(addresses, found))
            {
                var symbols = found
                    .Select(kv => new GuestSymbol(kv.Key, kv.Value, g._data.Contains(kv.Key)))
                    .OrderBy(s => s.Address)
                    .ThenBy(s => s.Name, StringComparer.Ordinal)
                    .ToList();
                return new GuestImage(bytes, symbols);
            }

            addresses = found;
        }

        throw new InvalidOperationException($"label addresses did not settle after {MaxPasses} passes");
    }

    /// <summary>The label called <paramref name="name"/>, for a branch operand; created on first use.</summary>
    public Label L(string name)
    {
        if (!_labels.TryGetValue(name, out var label))
        {
            label = Asm.CreateLabel(name);
            _labels.Add(name, label);
        }

        return label;
    }

    /// <summary>Binds label <paramref name="name"/> to the next instruction emitted.</summary>
    public void Bind(string name)
    {
        if (!_bound.Add(name))
        {
            throw new InvalidOperationException($"label '{name}' is bound twice");
        }

        var label = L(name);
        Asm.Label(ref label);
        // Label(ref) records the instruction index in the struct; keep that copy, since
        // GetLabelRIP needs it (branches only need the id, so earlier copies still work).
        _labels[name] = label;
    }

    /// <summary>Binds a label that marks data (not code): listings dump it instead of disassembling it.</summary>
    public void BindData(string name)
    {
        Bind(name);
        _data.Add(name);
    }

    /// <summary>
    /// The absolute (= offset, since every segment base is 0) address of label <paramref name="name"/>,
    /// as known from the previous pass; a placeholder on the first pass.
    /// </summary>
    public ushort Addr(string name)
    {
        if (_previous is null)
        {
            // Any value ≥ 0x80 keeps the operand from shrinking to an 8-bit form; the
            // load address is the natural one.
            return LoadAddress;
        }

        if (!_previous.TryGetValue(name, out var address))
        {
            throw new InvalidOperationException($"address of unknown label '{name}'");
        }

        return checked((ushort)address);
    }

    /// <summary>Calls a library routine and makes sure its code is part of the image.</summary>
    public void Call(Routine routine)
    {
        Require(routine);
        Asm.call(L(routine.Name));
    }

    /// <summary>Makes sure a library routine is emitted (for a routine that calls another one).</summary>
    public void Require(Routine routine)
    {
        if (!_routines.Contains(routine))
        {
            _routines.Add(routine);
        }
    }

    /// <summary>
    /// The label of a NUL-terminated copy of <paramref name="text"/> (ASCII) in the image's data
    /// area; identical strings are stored once.
    /// </summary>
    public string Str(string text)
    {
        if (!_strings.TryGetValue(text, out var name))
        {
            name = $"str.{_strings.Count}";
            _strings.Add(text, name);
        }

        return name;
    }

    private void EmitDeferred()
    {
        // Routines may require further routines while being emitted, hence the index loop.
        for (var i = 0; i < _routines.Count; i++)
        {
            _routines[i].Emit(this);
        }

        foreach (var (text, name) in _strings)
        {
            BindData(name);
            var bytes = new byte[text.Length + 1];
            for (var i = 0; i < text.Length; i++)
            {
                bytes[i] = text[i] <= 0x7F
                    ? (byte)text[i]
                    : throw new InvalidOperationException($"non-ASCII character in guest string \"{text}\"");
            }

            Asm.db(bytes);
        }
    }

    private (byte[] Bytes, Dictionary<string, ulong> Addresses) Assemble()
    {
        // Iced silently encodes a branch to a label that was never bound; refuse instead.
        var unbound = _labels.Keys.Where(name => !_bound.Contains(name)).ToList();
        if (unbound.Count > 0)
        {
            throw new InvalidOperationException($"labels used but never bound: {string.Join(", ", unbound)}");
        }

        var stream = new MemoryStream();
        var result = Asm.Assemble(new StreamCodeWriter(stream), LoadAddress, BlockEncoderOptions.ReturnNewInstructionOffsets);
        var addresses = new Dictionary<string, ulong>(StringComparer.Ordinal);
        foreach (var (name, label) in _labels)
        {
            addresses[name] = result.GetLabelRIP(label);
        }

        return (stream.ToArray(), addresses);
    }

    private static bool SameAddresses(IReadOnlyDictionary<string, ulong> a, Dictionary<string, ulong> b) =>
        a.Count == b.Count && a.All(kv => b.TryGetValue(kv.Key, out var v) && v == kv.Value);
}

/// <summary>A library routine: the label it is called by and the code that defines it.</summary>
public sealed record Routine(string Name, Action<GuestAssembler> Emit);
