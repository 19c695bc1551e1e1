// A tiny unbounded streaming job for the real-Flink e2e tests (test_flinkjarjob_real.py on this
// host, test_flinkjarjob_real_node.py on the real node): it checks that it got the arguments the
// FlinkJarJob's entrypoint_args say (split as a shell would, passed after "--"), then counts slowly
// forever, so that a test can watch it run, checkpoint, fail and resume.
// The count is operator state (checkpointed, restored with the job), and every element prints
// "tiny-count job=<Flink JobID> count=<n>" to the TaskManager's stdout: after a restore from a
// checkpoint the new JobID's first count continues the old one's instead of starting at 1.
import java.util.List;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;

public class FlinkTinyJob {
    public static void main(String[] args) throws Exception {
        if (args.length != 2 || !args[0].equals("--tag") || !args[1].equals("hello world")) {
            throw new IllegalArgumentException("unexpected arguments: " + String.join("|", args));
        }
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.fromSequence(0, Long.MAX_VALUE).map(new Counter()).setParallelism(1).sinkTo(new DiscardingSink<>());
        env.execute("flink-tiny-job");
    }

    static class Counter extends RichMapFunction<Long, Long> implements CheckpointedFunction {
        private transient ListState<Long> state;
        private long count;
        private String job = "?";

        @Override
        public void initializeState(FunctionInitializationContext context) throws Exception {
            state = context.getOperatorStateStore().getListState(new ListStateDescriptor<>("count", Long.class));
            for (Long restored : state.get()) {
                count = restored;
            }
        }

        @Override
        public void open(OpenContext context) {
            job = getRuntimeContext().getJobInfo().getJobId().toString();
        }

        @Override
        public void snapshotState(FunctionSnapshotContext context) throws Exception {
            state.update(List.of(count));
        }

        @Override
        public Long map(Long value) throws Exception {
            Thread.sleep(100);
            count++;
            System.out.println("tiny-count job=" + job + " count=" + count);
            return value;
        }
    }
}
