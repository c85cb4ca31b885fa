using Iced.Intel;

namespace Vmm.CpuSemantics.Tests.Harness;

/// <summary>
/// Iced's 16-bit assembler with named labels whose absolute addresses the code may use as immediates.
/// </summary>
/// <remarks>
/// Real mode has no IP-relative data addressing, and Iced's label operands are IP-relative: a label cannot be an
/// immediate (<c>mov word [0], handler</c>) or an absolute memory operand. So the code is emitted by a function run
/// more than once: the first pass uses a placeholder for every address, each later pass the addresses of the pass
/// before, until they stop moving. Labels are named by strings, which survive from pass to pass. (The same idea as
/// guests/Builder/GuestAssembler.cs, kept separate so this project depends on no other.)
/// </remarks>
public sealed class ImageAssembler
{
    private const int MaxPasses = 8;

    private readonly IReadOnlyDictionary<string, ulong>? _previous;
    private readonly ushort _origin;
    private readonly Dictionary<string, Label> _labels = new(StringComparer.Ordinal);
    private readonly HashSet<string> _bound = new(StringComparer.Ordinal);

    private ImageAssembler(ushort origin, IReadOnlyDictionary<string, ulong>? previous)
    {
        _origin = origin;
        _previous = previous;
    }

    /// <summary>The underlying assembler (bitness 16).</summary>
    public Assembler Asm { get; } = new(16);

    /// <summary>
    /// Assembles code for <paramref name="origin"/>: runs <paramref name="emit"/> (which must emit the same code on
    /// every call) until the label addresses are stable.
    /// </summary>
    public static (byte[] Bytes, IReadOnlyDictionary<string, ulong> Addresses) Build(ushort origin, Action<ImageAssembler> emit)
    {
        IReadOnlyDictionary<string, ulong>? addresses = null;
        for (var pass = 0; pass < MaxPasses; pass++)
        {
            var image = new ImageAssembler(origin, addresses);
            emit(image);
            var (bytes, found) = image.Assemble();
            if (addresses is not null && addresses.Count == found.Count && addresses.All(kv => found.TryGetValue(kv.Key, out var v) && v == kv.Value))
            {
                return (bytes, found);
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

    /// <summary>Binds label <paramref name="name"/> to the next instruction or data emitted.</summary>
    public void Bind(string name)
    {
        if (!_bound.Add(name))
        {
            throw new InvalidOperationException($"label '{name}' is bound twice");
        }

        var label = L(name);
        Asm.Label(ref label);
        // Label(ref) records the instruction index in the struct; GetLabelRIP needs that copy.
        _labels[name] = label;
    }

    /// <summary>
    /// The absolute address (= offset in segment 0) of label <paramref name="name"/> as the previous pass found it;
    /// on the first pass the origin, a placeholder wide enough that no operand shrinks to an 8-bit form.
    /// </summary>
    public ushort Addr(string name)
    {
        if (_previous is null)
        {
            return _origin;
        }

        return _previous.TryGetValue(name, out var address)
            ? checked((ushort)address)
            : throw new InvalidOperationException($"address of unknown label '{name}'");
    }

    /// <summary>Whether this is a later pass, when <see cref="Addr"/> gives real addresses.</summary>
    public bool KnowsAddresses => _previous is not null;

    private (byte[] Bytes, Dictionary<string, ulong> Addresses) Assemble()
    {
        // Iced silently encodes a branch to a label that was never bound; refuse instead.
        var unbound = _labels.Keys.Where(name => !_bound.Contains(name)).ToList();
        if (unbound.Count > 0)
        {
            throw new InvalidOperationException($"labels used but never bound: {string.Join(", ", unbound)}");
        }

        var stream = new MemoryStream();
        var result = Asm.Assemble(new StreamCodeWriter(stream), _origin, BlockEncoderOptions.ReturnNewInstructionOffsets);
        var addresses = new Dictionary<string, ulong>(StringComparer.Ordinal);
        foreach (var (name, label) in _labels)
        {
            addresses[name] = result.GetLabelRIP(label);
        }

        return (stream.ToArray(), addresses);
    }
}
