namespace Vmm.CpuSemantics.Tests.Harness;

/// <summary>
/// The results a machine sent on COM1 for one image (<see cref="ResultLayout"/>), as far as they go: a run that
/// crashed or hung has results for the cases before that point.
/// </summary>
/// <param name="Outcomes">Results of cases 0, 1, … in order, for as many cases as arrived whole.</param>
/// <param name="Complete">Every case's result and the trailer arrived.</param>
/// <param name="Problem">What was wrong with the stream, when it is not complete.</param>
public sealed record ResultDump(IReadOnlyList<CaseOutcome> Outcomes, bool Complete, string? Problem)
{
    public static ResultDump Parse(ReadOnlySpan<byte> serial, TestImage image)
    {
        var start = serial.IndexOf(ResultLayout.HeaderMagic);
        if (start < 0)
        {
            return new ResultDump([], false, $"no result header in {serial.Length} bytes of serial output");
        }

        var stream = serial[start..];
        if (stream.Length < ResultLayout.HeaderSize)
        {
            return new ResultDump([], false, "serial output ends inside the result header");
        }

        var count = BitConverter.ToUInt32(stream[8..]);
        var dataLength = BitConverter.ToUInt16(stream[12..]);
        var slotSize = BitConverter.ToUInt16(stream[14..]);
        if (count != image.Cases.Count || dataLength != image.DataLength || slotSize != ResultLayout.SlotSize)
        {
            return new ResultDump([], false, $"result header says {count} cases, {dataLength} data bytes, slot {slotSize}; the image has {image.Cases.Count}, {image.DataLength}, {ResultLayout.SlotSize}");
        }

        var outcomes = new List<CaseOutcome>();
        var position = ResultLayout.HeaderSize;
        var size = ResultLayout.SlotSize + dataLength;
        for (var i = 0; i < count; i++)
        {
            if (stream.Length - position < size)
            {
                return new ResultDump(outcomes, false, $"serial output ends after the results of {i} of {count} cases");
            }

            var slot = stream.Slice(position, ResultLayout.SlotSize);
            var index = BitConverter.ToUInt32(slot[ResultLayout.Index..]);
            if (index != i || slot[ResultLayout.Completion] != ResultLayout.CompletionMarker)
            {
                return new ResultDump(outcomes, false, $"result {i} is garbled (index {index}, completion byte 0x{slot[ResultLayout.Completion]:X2})");
            }

            var registers = new uint[8];
            for (var r = Gpr.Eax; r <= Gpr.Edi; r++)
            {
                registers[(int)r] = BitConverter.ToUInt32(slot[ResultLayout.RegisterOffset(r)..]);
            }

            var exception = slot[ResultLayout.Exception];
            outcomes.Add(new CaseOutcome(
                registers,
                BitConverter.ToUInt32(slot[ResultLayout.Eflags..]),
                exception == 0 ? null : exception - 1,
                slot[ResultLayout.BranchTaken] != 0,
                stream.Slice(position + ResultLayout.SlotSize, dataLength).ToArray()));
            position += size;
        }

        var rest = stream[position..];
        return rest.StartsWith(ResultLayout.TrailerMagic)
            ? new ResultDump(outcomes, true, null)
            : new ResultDump(outcomes, false, "all results arrived but the trailer did not");
    }
}
